#include "loom/core/error.h"

#include <fmt/format.h>

namespace loom {

std::string Error::located() const {
  if (file_.empty()) return what();
  if (line_ == 0) return fmt::format("{}: {}", file_, what());
  return fmt::format("{}:{}: {}", file_, line_, what());
}

}  // namespace loom
