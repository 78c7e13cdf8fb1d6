// SHA-256 (FIPS 180-4) of bytes, as 64 lowercase hex digits: for digests that must equal other
// tools' (the tokenizer check hash of llama.cpp's converter, tensor checksums in tests).
//
//   loom::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#pragma once
#include <string>
#include <string_view>

namespace loom {

std::string sha256_hex(std::string_view data);

}  // namespace loom
