// Standard base64 (RFC 4648, with padding): vectors as --encoding base64, bytes of partial UTF-8,
// SentencePiece charsmaps in tokenizer.json.
//
//   io::base64_encode("ab")   == "YWI="
//   io::base64_decode("YWI=") == "ab"   (nullopt for anything but canonical, padded base64)
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace loom::io {

std::string base64_encode(std::string_view in);
// Strict: length a multiple of 4, '=' only as final padding, leftover bits zero.
std::optional<std::string> base64_decode(std::string_view s);

}  // namespace loom::io
