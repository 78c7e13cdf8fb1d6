// Python's character classes, for the tokenizers that must split and lowercase text exactly as a
// Python reference does (BM25 as bm25s, text metrics as sacrebleu / rouge-score / SQuAD).
//
//   text::py::is_word(c)            re's \w on str: str.isalnum() or '_' (L*, Nd, Nl, No, '_')
//   text::py::is_case_ignorable(c)  Case_Ignorable (DerivedCoreProperties.txt)
//   text::py::is_cased(c)           Cased, for a character that is not case-ignorable
//
// The last two are what str.lower()'s Final_Sigma rule asks (handle_capital_sigma in CPython's
// unicodeobject.c): U+03A3 lowers to U+03C2 when a cased character precedes it and none follows,
// case-ignorable characters skipped both ways. Character data comes from utf8proc: general
// categories, plus the few code points that PropList.txt (Other_Lowercase, Other_Uppercase) and
// WordBreakProperty.txt (MidLetter, MidNumLet, Single_Quote) add. tests/unit/test_bm25.cpp and
// test_eval_text.cpp check them against Python on every code point.
#pragma once

namespace loom::text::py {

bool is_word(char32_t c);
bool is_case_ignorable(char32_t c);
bool is_cased(char32_t c);

}  // namespace loom::text::py
