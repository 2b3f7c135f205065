#include "watch/run_history.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "kernels/error.h"

namespace polytask::watch {

namespace {

using Json = nlohmann::ordered_json;  // keeps file order, so heads come out as the file has them

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A number or null (NaN); anything else is not a value of ours and is skipped (nullopt).
std::optional<double> numeric(const Json& v) {
  if (v.is_null()) return kNaN;
  if (v.is_number()) return v.get<double>();
  return std::nullopt;
}

// The heads of a line without a "weights" object: its "<task>_loss" training keys.
std::vector<std::string> tasks_from_losses(const Json& line) {
  std::vector<std::string> tasks;
  for (const auto& [key, value] : line.items())
    if (ends_with(key, "_loss") && !starts_with(key, "val_") && !starts_with(key, "test_"))
      tasks.push_back(key.substr(0, key.size() - 5));
  return tasks;
}

}  // namespace

std::vector<std::string> RunHistory::metrics_of(const std::string& task) const {
  const std::string prefix = task + "_";
  std::set<std::string> found;
  for (const EpochRecord& e : epochs)
    for (const auto& entry : e.values) {
      const std::string& key = entry.first;  // a plain name: lambdas may not capture bindings
      if (!starts_with(key, prefix)) continue;
      // "digit_extra_loss" belongs to a head "digit_extra" when there is one.
      const bool other_head = std::any_of(tasks.begin(), tasks.end(), [&](const std::string& t) {
        return t.size() > task.size() && starts_with(t, prefix) && starts_with(key, t + "_");
      });
      const std::string metric = key.substr(prefix.size());
      if (!other_head && metric != "loss" && !metric.empty()) found.insert(metric);
    }
  return {found.begin(), found.end()};
}

RunHistory read_run_history(const std::string& path, const std::string& label) {
  std::ifstream in(path);
  if (!in) fail("cannot open the metrics file ", path, ": ", std::strerror(errno));
  RunHistory run;
  run.label = label;
  std::string text;
  for (int number = 1; std::getline(in, text); ++number) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json line;
    try {
      line = Json::parse(text);
    } catch (const Json::exception& e) {  // parse_error, and out_of_range for 1e309
      fail(path, ":", number, ": not JSON: ", e.what());
    }
    if (!line.is_object()) fail(path, ":", number, ": expected a JSON object per line");
    const auto epoch = line.find("epoch");
    if (epoch == line.end() || !epoch->is_number_integer())
      fail(path, ":", number, ": no integer \"epoch\"");
    EpochRecord record;
    record.epoch = epoch->get<int>();
    for (const auto& [key, value] : line.items()) {
      if (key == "epoch") continue;
      if (key == "weights" && value.is_object()) {
        for (const auto& [task, weight] : value.items())
          if (const auto w = numeric(weight)) record.weights[task] = *w;
      } else if (const auto v = numeric(value)) {
        record.values[key] = *v;
      }
    }
    if (run.epochs.empty()) {
      const auto weights = line.find("weights");
      if (weights != line.end() && weights->is_object() && !weights->empty()) {
        for (const auto& [task, weight] : weights->items()) run.tasks.push_back(task);
      } else {
        run.tasks = tasks_from_losses(line);
      }
      const auto balancer = line.find("balancer");
      if (balancer != line.end() && balancer->is_string())
        run.balancer = balancer->get<std::string>();
    }
    run.epochs.push_back(std::move(record));
  }
  if (in.bad()) fail("cannot read the metrics file ", path);
  if (run.epochs.empty()) fail(path, ": no epochs yet");
  return run;
}

}  // namespace polytask::watch
