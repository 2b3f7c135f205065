#include "cli/metrics_json.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "engine/callback.h"
#include "kernels/error.h"

namespace polytask::cli {

namespace {

std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// "loss": .., "<task>_loss": .., "<task>_<metric>": .. with an optional "val_"/"test_" prefix.
std::string fields(const std::vector<TaskTotals>& totals, const Network& net,
                   const std::string& prefix) {
  std::string out;
  for (const auto& [key, value] : totals_logs(totals, net, prefix))
    out += (out.empty() ? "\"" : ", \"") + key + "\": " + number(value);
  return out;
}

}  // namespace

std::string epoch_json(const EpochLog& log, const Network& net) {
  std::string out = "{\"epoch\": " + std::to_string(log.epoch) +
                    ", \"seconds\": " + number(log.seconds) + ", " +
                    (log.communication_seconds > 0
                         ? "\"communication_seconds\": " + number(log.communication_seconds) + ", "
                         : std::string()) +
                    fields(log.train, net, "");
  if (!log.validation.empty()) out += ", " + fields(log.validation, net, "val_");
  out += ", \"learning_rate\": " + number(log.learning_rate);
  if (!net.options().soft_sharing.groups.empty())
    out += ", \"soft_sharing_penalty\": " + number(log.soft_sharing_penalty);
  // The balancer's epoch: mean weights, gradient norms at the fan-out, pairwise cosines.
  const BalanceDiagnostics& d = log.balance;
  const size_t tasks = net.tasks().size();
  const auto per_task = [&](const std::vector<double>& values) {
    std::string items;
    for (size_t t = 0; t < tasks && t < values.size(); ++t)
      items += (t ? ", \"" : "\"") + net.tasks()[t].name + "\": " + number(values[t]);
    return "{" + items + "}";
  };
  std::string cosines, conflicts;
  for (size_t i = 0; i < tasks && d.cosine.size() == tasks * tasks; ++i)
    for (size_t j = i + 1; j < tasks; ++j) {
      const std::string key = (cosines.empty() ? "\"" : ", \"") + net.tasks()[i].name + "," +
                              net.tasks()[j].name + "\": ";
      cosines += key + number(d.cos(i, j));
      conflicts += key + number(d.conflict_rate(i, j));
    }
  return out + ", \"balancer\": \"" + net.fan_out().balancer().name() +
         "\", \"weights\": " + per_task(d.weights) + ", \"grad_norm\": " + per_task(d.grad_norm) +
         ", \"grad_cosine\": {" + cosines + "}, \"grad_conflict\": {" + conflicts + "}}";
}

std::string totals_json(const std::vector<TaskTotals>& totals, const Network& net,
                        const std::string& prefix, double seconds) {
  return "{\"examples\": " + std::to_string(totals.empty() ? 0 : totals[0].examples) + ", " +
         (seconds >= 0 ? "\"seconds\": " + number(seconds) + ", " : std::string()) +
         fields(totals, net, prefix) + "}";
}

std::vector<std::string> read_metric_lines(const std::string& path, int last_epoch) {
  std::vector<std::string> lines;
  if (!std::filesystem::exists(path)) return lines;
  std::ifstream in(path);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string_view key = "{\"epoch\": ";
    if (line.rfind(key, 0) != 0)
      fail(path, ":", number, ": expected a line starting with '", key, "', got '",
           line.substr(0, 40), "'");
    // The epoch number, followed by the next field.
    int64_t epoch = 0;
    const char* begin = line.data() + key.size();
    const char* end = line.data() + line.size();
    const auto [stop, ec] = std::from_chars(begin, end, epoch);
    if (ec != std::errc() || stop == end || (*stop != ',' && *stop != '}') || epoch < 1)
      fail(path, ":", number, ": field 'epoch' is not a positive integer: '",
           line.substr(key.size(), 20), "'");
    if (epoch <= last_epoch) lines.push_back(line);
  }
  return lines;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

}  // namespace polytask::cli
