#include "loom/eval/compare.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <random>
#include <unordered_set>

#include "loom/chat/value.h"
#include "loom/core/error.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"

namespace loom::eval {

namespace {

// The regularized incomplete beta function I_x(a, b), by its continued fraction (modified Lentz),
// on the side where it converges fast.
double betainc(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - betainc(b, a, 1 - x);
  const double tiny = 1e-300, eps = 1e-16;
  double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x)) / a;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double f = d;
  for (int m = 1; m < 10000; ++m) {
    for (int odd = 0; odd < 2; ++odd) {
      double num = odd ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                       : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
      d = 1 + num * d;
      if (std::fabs(d) < tiny) d = tiny;
      c = 1 + num / c;
      if (std::fabs(c) < tiny) c = tiny;
      d = 1 / d;
      f *= c * d;
      if (odd && std::fabs(c * d - 1) < eps) return front * f;
    }
  }
  return front * f;
}

std::optional<double> number(const chat::Value& v) {
  if (v.is_number()) return v.as_float();
  return std::nullopt;
}

}  // namespace

double student_t_sf(double t, double df) {
  if (std::isnan(t)) return t;
  if (std::isinf(t)) return t > 0 ? 0 : 1;
  double tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t));
  return t > 0 ? tail : 1 - tail;
}

PairedTest paired_ttest(const std::vector<double>& base, const std::vector<double>& next) {
  PairedTest r;
  r.n = std::min(base.size(), next.size());
  if (r.n == 0) return r;
  double sum = 0;
  for (size_t i = 0; i < r.n; ++i) sum += next[i] - base[i];
  r.mean_diff = sum / r.n;
  if (r.n < 2) return r;
  double ss = 0;
  for (size_t i = 0; i < r.n; ++i) {
    double e = next[i] - base[i] - r.mean_diff;
    ss += e * e;
  }
  double sd = std::sqrt(ss / (r.n - 1));
  if (sd == 0) {  // every difference the same: certain unless it is 0 (scipy: inf and 0, or nan)
    if (r.mean_diff != 0) r.t = std::copysign(INFINITY, r.mean_diff), r.p = 0.0;
    return r;
  }
  r.t = r.mean_diff / (sd / std::sqrt(static_cast<double>(r.n)));
  r.p = std::min(1.0, 2 * student_t_sf(std::fabs(*r.t), static_cast<double>(r.n - 1)));
  return r;
}

Bootstrap paired_bootstrap(const std::vector<double>& base, const std::vector<double>& next, uint32_t samples,
                           uint64_t seed) {
  Bootstrap b;
  size_t n = std::min(base.size(), next.size());
  if (n < 2 || samples == 0) return b;
  std::vector<double> d(n);
  double observed = 0;
  for (size_t i = 0; i < n; ++i) observed += d[i] = next[i] - base[i];
  observed /= n;
  std::mt19937_64 rng(seed);  // specified by the standard: the same draws everywhere
  std::vector<double> means(samples);
  size_t extreme = 0;
  for (uint32_t s = 0; s < samples; ++s) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += d[static_cast<size_t>((static_cast<unsigned __int128>(rng()) * n) >> 64)];
    means[s] = sum / n;
    if (std::fabs(means[s] - observed) >= std::fabs(observed)) ++extreme;
  }
  b.p = (1.0 + extreme) / (1.0 + samples);
  std::sort(means.begin(), means.end());
  auto at = [&](double q) { return means[std::min<size_t>(samples - 1, static_cast<size_t>(q * (samples - 1) + 0.5))]; };
  b.low = at(0.025);
  b.high = at(0.975);
  return b;
}

EvalFile read_evaluation(const std::string& path) {
  EvalFile ev;
  ev.file = path;
  auto in = io::Input::open(path);
  io::LineReader lines(*in);
  std::string_view line;
  bool summary = false;
  std::vector<std::string> names;  // metrics seen in items, first appearance first
  std::unordered_set<std::string> seen;
  auto metric_index = [&](const std::string& name) {
    auto it = std::find(names.begin(), names.end(), name);
    if (it != names.end()) return static_cast<size_t>(it - names.begin());
    names.push_back(name);
    ev.values.emplace_back(ev.ids.size());
    return names.size() - 1;
  };
  while (lines.next(line)) {
    size_t at = lines.line_number();
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    chat::Value v;
    try {
      v = chat::Value::parse_json(line);
    } catch (Error& e) {
      throw e.at(path, at);
    }
    const chat::Value* m = v.is_dict() ? v.get("metrics") : nullptr;
    if (!m || !m->is_dict())
      throw input_error("not an evaluation line: a JSON object with \"metrics\" (what loom eval writes)", path, at);
    if (summary) throw input_error("a line after the summary (the summary is the last line)", path, at);
    if (const chat::Value* id = v.get("id")) {
      std::string name = id->is_string() ? id->str() : fmt::format("{}", id->as_float());
      if (!seen.insert(name).second) throw input_error(fmt::format("item \"{}\" appears twice", name), path, at);
      ev.ids.push_back(std::move(name));
      for (auto& col : ev.values) col.emplace_back();
      for (auto& [k, x] : m->entries()) {
        if (!x.is_number() && !x.is_none())
          throw input_error(fmt::format("metric \"{}\" is not a number", k), path, at);
        ev.values[metric_index(k)].back() = number(x);
      }
    } else {
      summary = true;
      if (const chat::Value* k = v.get("eval"); k && k->is_string()) ev.kind = k->str();
      for (auto& [k, x] : m->entries())
        if (x.is_number()) ev.metrics.emplace_back(k, x.as_float());
    }
  }
  if (!summary && ev.ids.empty()) throw input_error("no evaluation in this file (empty)", path);
  if (!summary)
    for (size_t j = 0; j < names.size(); ++j) {
      double sum = 0;
      size_t n = 0;
      for (auto& x : ev.values[j])
        if (x) sum += *x, ++n;
      if (n) ev.metrics.emplace_back(names[j], sum / n);
    }
  // values by summary metric order (a metric without item values gets an empty column)
  std::vector<std::vector<std::optional<double>>> cols;
  for (auto& [name, _] : ev.metrics) {
    auto it = std::find(names.begin(), names.end(), name);
    cols.push_back(it == names.end() ? std::vector<std::optional<double>>{} : std::move(ev.values[it - names.begin()]));
  }
  ev.values = std::move(cols);
  return ev;
}

std::pair<std::string, double> parse_threshold(std::string_view spec) {
  size_t eq = spec.rfind('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == spec.size())
    throw usage_error(fmt::format("'{}': a threshold is METRIC=VALUE (e.g. ndcg_cut_10=0.4)", spec));
  std::string_view num = spec.substr(eq + 1);
  double v = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  if (ec != std::errc() || p != num.data() + num.size() || !std::isfinite(v))
    throw usage_error(fmt::format("'{}': '{}' is not a number", spec, num));
  return {std::string(spec.substr(0, eq)), v};
}

std::vector<std::string> check_thresholds(const std::vector<std::pair<std::string, std::optional<double>>>& metrics,
                                          const std::vector<std::string>& under, const std::vector<std::string>& over) {
  std::vector<std::string> failed;
  auto check = [&](const std::string& spec, bool is_under) {
    const auto threshold = parse_threshold(spec);
    const std::string& name = threshold.first;
    const double limit = threshold.second;
    auto it = std::find_if(metrics.begin(), metrics.end(), [&](auto& m) { return m.first == name; });
    if (it == metrics.end()) {
      std::vector<std::string> have;
      for (auto& m : metrics) have.push_back(m.first);
      throw usage_error(fmt::format("--fail-{} {}: no metric '{}' in this evaluation (it has: {})", is_under ? "under" : "over",
                                    spec, name, fmt::join(have, ", ")));
    }
    if (!it->second)
      failed.push_back(fmt::format("{} is undefined (no item has a value), so not {} {:.6g}", name, is_under ? "at least" : "at most", limit));
    else if (double v = *it->second; is_under ? !(v >= limit) : !(v <= limit))
      failed.push_back(fmt::format("{} is {:.6g}, {} {:.6g}", name, v, is_under ? "under" : "over", limit));
  };
  for (auto& s : under) check(s, true);
  for (auto& s : over) check(s, false);
  return failed;
}

}  // namespace loom::eval
