// The Porter stemmer exactly as nltk 3.10.4's PorterStemmer in its default NLTK_EXTENSIONS mode
// (the stemmer rouge-score uses): Porter's 1980 algorithm with Martin Porter's later changes and
// nltk's own (irregular forms, "ies"/"ied" on four-letter words, y -> i only after a consonant,
// the "alli", "fulli" and "logi" rules, *o also true for a two-letter vowel-consonant stem).
// Declared in text.h; tests/unit/test_eval_text.cpp checks it against nltk on a few thousand
// words (tests/reference/golden/eval_text/porter.json.zst).
//
// A rule list works as nltk's _apply_rule_list: the first rule whose suffix ends the word decides;
// when its condition fails the word is returned unchanged (later rules are not tried).
#include <string>
#include <string_view>

#include "loom/eval/text.h"

namespace loom::eval {

namespace {

bool vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// Consonant per Porter: not a vowel, and y only when it does not follow a consonant (a y at the
// start is a consonant). Depends only on the prefix, so one pass classifies every position.
bool consonant(std::string_view w, size_t i) {
  bool c = false;
  for (size_t k = 0; k <= i; ++k) c = vowel(w[k]) ? false : w[k] == 'y' ? (k == 0 || !c) : true;
  return c;
}

// m in [C](VC){m}[V]: the number of vowel -> consonant transitions.
int measure(std::string_view w) {
  int m = 0;
  bool prev = false;
  for (size_t k = 0; k < w.size(); ++k) {
    bool c = vowel(w[k]) ? false : w[k] == 'y' ? (k == 0 || !prev) : true;
    if (k > 0 && !prev && c) ++m;
    prev = c;
  }
  return m;
}

bool contains_vowel(std::string_view w) {
  bool prev = false;
  for (size_t k = 0; k < w.size(); ++k) {
    bool c = vowel(w[k]) ? false : w[k] == 'y' ? (k == 0 || !prev) : true;
    if (!c) return true;
    prev = c;
  }
  return false;
}

bool ends_double_consonant(std::string_view w) {
  size_t n = w.size();
  return n >= 2 && w[n - 1] == w[n - 2] && consonant(w, n - 1);
}

// *o: ends consonant-vowel-consonant, the last not w, x or y; or (nltk) is vowel-consonant.
bool ends_cvc(std::string_view w) {
  size_t n = w.size();
  if (n >= 3 && consonant(w, n - 3) && !consonant(w, n - 2) && consonant(w, n - 1) && w[n - 1] != 'w' &&
      w[n - 1] != 'x' && w[n - 1] != 'y')
    return true;
  return n == 2 && !consonant(w, 0) && consonant(w, 1);
}

bool ends_with(std::string_view w, std::string_view s) {
  return w.size() >= s.size() && w.substr(w.size() - s.size()) == s;
}

enum class Cond { None, M0, M1, M1ST, LogI };  // none, m > 0, m > 1, m > 1 and *S or *T, logi's

struct Rule {
  std::string_view suffix, replacement;
  Cond cond;
};

std::string apply(const std::string& w, std::initializer_list<Rule> rules) {
  for (const Rule& r : rules) {
    if (!ends_with(w, r.suffix)) continue;
    std::string_view stem = std::string_view(w).substr(0, w.size() - r.suffix.size());
    bool ok = true;
    switch (r.cond) {
      case Cond::None: break;
      case Cond::M0: ok = measure(stem) > 0; break;
      case Cond::M1: ok = measure(stem) > 1; break;
      case Cond::M1ST: ok = measure(stem) > 1 && !stem.empty() && (stem.back() == 's' || stem.back() == 't'); break;
      case Cond::LogI: ok = measure(std::string_view(w).substr(0, w.size() - 3)) > 0; break;
    }
    return ok ? std::string(stem) + std::string(r.replacement) : w;
  }
  return w;
}

std::string step1a(const std::string& w) {
  if (ends_with(w, "ies") && w.size() == 4) return w.substr(0, 1) + "ie";
  return apply(w, {{"sses", "ss", Cond::None}, {"ies", "i", Cond::None}, {"ss", "ss", Cond::None}, {"s", "", Cond::None}});
}

std::string step1b(const std::string& w) {
  if (ends_with(w, "ied")) return w.substr(0, w.size() - 3) + (w.size() == 4 ? "ie" : "i");
  if (ends_with(w, "eed")) {
    std::string stem = w.substr(0, w.size() - 3);
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string s;
  if (ends_with(w, "ed") && contains_vowel(std::string_view(w).substr(0, w.size() - 2))) s = w.substr(0, w.size() - 2);
  else if (ends_with(w, "ing") && contains_vowel(std::string_view(w).substr(0, w.size() - 3))) s = w.substr(0, w.size() - 3);
  else return w;
  if (ends_with(s, "at") || ends_with(s, "bl") || ends_with(s, "iz")) return s + "e";
  if (ends_double_consonant(s)) {
    char last = s.back();
    return last == 'l' || last == 's' || last == 'z' ? s : s.substr(0, s.size() - 1);
  }
  return measure(s) == 1 && ends_cvc(s) ? s + "e" : s;
}

std::string step1c(const std::string& w) {
  if (!ends_with(w, "y")) return w;
  std::string_view stem = std::string_view(w).substr(0, w.size() - 1);
  return stem.size() > 1 && consonant(stem, stem.size() - 1) ? std::string(stem) + "i" : w;
}

std::string step2(const std::string& w) {
  if (ends_with(w, "alli") && measure(std::string_view(w).substr(0, w.size() - 4)) > 0)
    return step2(w.substr(0, w.size() - 4) + "al");
  return apply(w, {{"ational", "ate", Cond::M0}, {"tional", "tion", Cond::M0}, {"enci", "ence", Cond::M0},
                   {"anci", "ance", Cond::M0},   {"izer", "ize", Cond::M0},    {"bli", "ble", Cond::M0},
                   {"alli", "al", Cond::M0},     {"entli", "ent", Cond::M0},   {"eli", "e", Cond::M0},
                   {"ousli", "ous", Cond::M0},   {"ization", "ize", Cond::M0}, {"ation", "ate", Cond::M0},
                   {"ator", "ate", Cond::M0},    {"alism", "al", Cond::M0},    {"iveness", "ive", Cond::M0},
                   {"fulness", "ful", Cond::M0}, {"ousness", "ous", Cond::M0}, {"aliti", "al", Cond::M0},
                   {"iviti", "ive", Cond::M0},   {"biliti", "ble", Cond::M0},  {"fulli", "ful", Cond::M0},
                   {"logi", "log", Cond::LogI}});
}

std::string step3(const std::string& w) {
  return apply(w, {{"icate", "ic", Cond::M0}, {"ative", "", Cond::M0}, {"alize", "al", Cond::M0},
                   {"iciti", "ic", Cond::M0}, {"ical", "ic", Cond::M0}, {"ful", "", Cond::M0}, {"ness", "", Cond::M0}});
}

std::string step4(const std::string& w) {
  return apply(w, {{"al", "", Cond::M1},   {"ance", "", Cond::M1}, {"ence", "", Cond::M1},  {"er", "", Cond::M1},
                   {"ic", "", Cond::M1},   {"able", "", Cond::M1}, {"ible", "", Cond::M1},  {"ant", "", Cond::M1},
                   {"ement", "", Cond::M1}, {"ment", "", Cond::M1}, {"ent", "", Cond::M1},  {"ion", "", Cond::M1ST},
                   {"ou", "", Cond::M1},   {"ism", "", Cond::M1},  {"ate", "", Cond::M1},   {"iti", "", Cond::M1},
                   {"ous", "", Cond::M1},  {"ive", "", Cond::M1},  {"ize", "", Cond::M1}});
}

std::string step5a(const std::string& w) {
  if (!ends_with(w, "e")) return w;
  std::string_view stem = std::string_view(w).substr(0, w.size() - 1);
  int m = measure(stem);
  return m > 1 || (m == 1 && !ends_cvc(stem)) ? std::string(stem) : w;
}

std::string step5b(const std::string& w) {
  if (ends_with(w, "ll") && measure(std::string_view(w).substr(0, w.size() - 1)) > 1) return w.substr(0, w.size() - 1);
  return w;
}

}  // namespace

std::string porter_stem(std::string_view word) {
  std::string w(word);
  for (char& c : w)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  // nltk's irregular forms
  static constexpr std::pair<std::string_view, std::string_view> kPool[] = {
      {"sky", "sky"},       {"skies", "sky"},       {"dying", "die"},      {"lying", "lie"},
      {"tying", "tie"},     {"news", "news"},       {"innings", "inning"}, {"inning", "inning"},
      {"outings", "outing"}, {"outing", "outing"},  {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},     {"proceed", "proceed"}, {"exceed", "exceed"},  {"succeed", "succeed"}};
  for (const auto& [form, stem] : kPool)
    if (w == form) return std::string(stem);
  if (word.size() <= 2) return w;
  w = step1a(w);
  w = step1b(w);
  w = step1c(w);
  w = step2(w);
  w = step3(w);
  w = step4(w);
  w = step5a(w);
  w = step5b(w);
  return w;
}

}  // namespace loom::eval
