// `loom tokenize train`: trains a SentencePiece tokenizer (train.cpp).
#pragma once

// Runs `loom-tokenize train ...`; argv[0] is "train". Returns the exit status.
int tokenize_train_main(int argc, char** argv);
