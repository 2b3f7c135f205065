#include "engine/callback.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/network.h"
#include "engine/trainer.h"
#include "kernels/error.h"

namespace polytask {

std::vector<std::pair<std::string, double>> totals_logs(const std::vector<TaskTotals>& totals,
                                                        const Network& net,
                                                        const std::string& prefix) {
  std::vector<std::pair<std::string, double>> out;
  double weighted = 0;
  for (size_t t = 0; t < totals.size(); ++t)
    weighted += net.fan_out().loss_weight(t) * totals[t].loss();
  out.emplace_back(prefix + "loss", weighted);
  for (size_t t = 0; t < totals.size(); ++t)
    out.emplace_back(prefix + net.tasks()[t].name + "_loss", totals[t].loss());
  for (size_t t = 0; t < totals.size(); ++t) {
    const auto metrics = net.tasks()[t].effective_metrics();
    for (size_t m = 0; m < metrics.size(); ++m)
      out.emplace_back(prefix + net.tasks()[t].name + "_" + metric_name(metrics[m]),
                       totals[t].metric(m));
  }
  return out;
}

Logs epoch_logs(const EpochLog& log, const Network& net) {
  Logs logs;
  for (const auto& [key, value] : totals_logs(log.train, net, "")) logs[key] = value;
  if (!log.validation.empty())
    for (const auto& [key, value] : totals_logs(log.validation, net, "val_")) logs[key] = value;
  logs["learning_rate"] = log.learning_rate;
  return logs;
}

std::vector<std::string> monitor_keys(const Network& net, bool with_validation) {
  // The keys totals_logs gives, from totals that only need the right shape.
  const auto totals = net.make_totals();
  std::vector<std::string> keys;
  for (const auto& kv : totals_logs(totals, net, "")) keys.push_back(kv.first);
  if (with_validation)
    for (const auto& kv : totals_logs(totals, net, "val_")) keys.push_back(kv.first);
  return keys;
}

void check_monitor(const std::string& monitor, const Network& net, bool with_validation,
                   const std::string& who) {
  const auto keys = monitor_keys(net, with_validation);
  if (std::find(keys.begin(), keys.end(), monitor) != keys.end()) return;
  std::string list;
  for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
  const bool wants_validation = monitor.rfind("val_", 0) == 0 && !with_validation;
  fail(who, ": unknown monitor '", monitor, "'",
       wants_validation ? " (there is no validation data: set a validation split)" : "",
       " (valid: ", list, ")");
}

bool monitor_maximizes(const std::string& monitor, const std::string& mode,
                       const std::string& who) {
  if (mode == "max") return true;
  if (mode == "min") return false;
  if (mode != "auto") fail(who, ": mode must be auto, min or max, got '", mode, "'");
  // Keras' auto mode: accuracy-like keys improve upwards, everything else (losses, errors)
  // downwards.
  return monitor.find("acc") != std::string::npos || monitor.ends_with("auc");
}

std::map<std::string, std::string> callbacks_state(const Callbacks& callbacks) {
  std::map<std::string, std::string> out;
  for (const auto& cb : callbacks)
    for (const auto& [key, value] : cb->state()) out[cb->name() + "." + key] = value;
  return out;
}

void load_callbacks_state(const Callbacks& callbacks,
                          const std::map<std::string, std::string>& state) {
  for (const auto& cb : callbacks) {
    const std::string prefix = cb->name() + ".";
    std::map<std::string, std::string> own;
    for (const auto& [key, value] : state)
      if (key.rfind(prefix, 0) == 0) own[key.substr(prefix.size())] = value;
    cb->load_state(own);
  }
}

std::string state_number(double v) {
  char text[40];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

double parse_state_number(const std::map<std::string, std::string>& state, const std::string& key,
                          double fallback) {
  const auto it = state.find(key);
  if (it == state.end()) return fallback;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (end == it->second.c_str() || *end != '\0')
    fail("callback state '", key, "' is not a number: '", it->second, "'");
  return v;
}

}  // namespace polytask
