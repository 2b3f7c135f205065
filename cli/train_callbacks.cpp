#include "cli/train_callbacks.h"

#include <algorithm>
#include <sstream>

#include "engine/callbacks/csv_logger.h"
#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/learning_rate_scheduler.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/reduce_lr_on_plateau.h"
#include "engine/callbacks/terminate_on_nan.h"
#include "engine/checkpoint.h"
#include "watch/tensorboard_callback.h"

namespace polytask::cli {

namespace {

constexpr const char* kStatePrefix = "callbacks.";
constexpr const char* kBestDir = "best";
constexpr const char* kTensorBoardDir = "tb";
constexpr int64_t kSampleCount = 16;  // the sample-predictions image: two rows of eight

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.emplace_back();
  return parts;
}

int whole_number(const std::string& text, const std::string& flag, const std::string& what) {
  const auto v = to_int(text);
  if (!v || *v < 0 || *v > 1'000'000)
    throw UsageError(cat("--", flag, ": ", what, " must be a whole number >= 0, got '", text, "'"));
  return int(*v);
}

struct EarlyStoppingSpec {
  std::string monitor;
  int patience = 0;
};
EarlyStoppingSpec parse_early_stopping(const std::string& text) {
  const auto parts = split(text, ':');
  if (parts.empty() || parts.size() > 2 || parts[0].empty())
    throw UsageError(cat("--early-stopping expects MONITOR[:PATIENCE], got '", text, "'"));
  return {parts[0], parts.size() == 2 ? whole_number(parts[1], "early-stopping", "PATIENCE") : 0};
}

callbacks::ReduceLROnPlateauOptions parse_plateau(const std::string& text) {
  const auto parts = split(text, ':');
  if (parts.empty() || parts[0].empty() || (parts.size() != 1 && parts.size() != 3))
    throw UsageError(
        cat("--reduce-lr-on-plateau expects MONITOR[:FACTOR:PATIENCE], got '", text, "'"));
  callbacks::ReduceLROnPlateauOptions o;
  o.monitor = parts[0];
  if (parts.size() == 3) {
    const auto factor = to_number(parts[1]);
    if (!factor || !(*factor > 0 && *factor < 1))
      throw UsageError(
          cat("--reduce-lr-on-plateau: FACTOR must be in (0, 1), got '", parts[1], "'"));
    o.factor = *factor;
    o.patience = whole_number(parts[2], "reduce-lr-on-plateau", "PATIENCE");
  }
  return o;
}

callbacks::LrSchedule parse_schedule(const std::string& text, double lr, int warmup) {
  try {
    return callbacks::LrSchedule::parse(text, lr, warmup);
  } catch (const Error& e) {
    throw UsageError(cat("--lr-schedule: ", e.what()));
  }
}

void check_flag_monitor(const std::string& monitor, const std::string& flag, const Network& net,
                        bool has_validation) {
  try {
    check_monitor(monitor, net, has_validation, "--" + flag);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

}  // namespace

void declare_callback_options(Args& a) {
  a.option("early-stopping", "MONITOR[:PATIENCE]", "",
           "stop when MONITOR (a Keras key: val_loss, val_digit_accuracy...) has not improved "
           "for PATIENCE epochs (default 0), as Keras' EarlyStopping");
  a.flag("restore-best-weights",
         "with --early-stopping: end with the weights of the best epoch (kept in RUN/best)");
  a.option("reduce-lr-on-plateau", "MONITOR[:FACTOR:PATIENCE]", "",
           "multiply the learning rate by FACTOR (default 0.1) when MONITOR has not improved for "
           "PATIENCE epochs (default 10), as Keras' ReduceLROnPlateau");
  a.option("lr-schedule", "SCHEDULE", "",
           "the learning rate per epoch from --lr: cosine (half a cosine, down to 0 as the last "
           "epoch ends), step:EVERY:FACTOR, exponential:DECAY or constant");
  a.option("warmup-epochs", "N", "0",
           "raise the learning rate linearly to --lr over the first N epochs, then follow "
           "--lr-schedule");
  a.option("save-best", "MONITOR", "",
           "also keep the parameters of the epoch with the best MONITOR in RUN/best "
           "('eval --best', 'predict --best' use them)");
  a.flag("no-tensorboard", "do not write TensorBoard event files (RUN/tb)");
  a.option("log-every", "N", "100",
           "TensorBoard: the running training losses every N steps (0: per epoch only; on the "
           "GPU each costs one wait for the device)");
}

void callback_settings(const Args& a, Settings& s) {
  if (a.is_set("early-stopping")) {
    parse_early_stopping(a.get("early-stopping"));
    s["early-stopping"] = a.get("early-stopping");
  }
  if (a.is_set("restore-best-weights")) {
    if (!a.is_set("early-stopping"))
      throw UsageError("--restore-best-weights needs --early-stopping");
    const std::string monitor = parse_early_stopping(a.get("early-stopping")).monitor;
    if (a.is_set("save-best") && a.get("save-best") != monitor)
      throw UsageError(cat("--restore-best-weights keeps the best ", monitor,
                           " in RUN/best, where --save-best ", a.get("save-best"),
                           " would keep another; use one monitor for both"));
    s["restore-best-weights"] = "yes";
  }
  if (a.is_set("reduce-lr-on-plateau")) {
    if (a.is_set("lr-schedule") || a.is_set("warmup-epochs"))
      throw UsageError(
          "--reduce-lr-on-plateau and --lr-schedule/--warmup-epochs both set the learning "
          "rate; choose one");
    parse_plateau(a.get("reduce-lr-on-plateau"));
    s["reduce-lr-on-plateau"] = a.get("reduce-lr-on-plateau");
  }
  const int warmup = whole_number(a.get("warmup-epochs"), "warmup-epochs", "N");
  if (a.is_set("lr-schedule") || warmup > 0) {
    parse_schedule(a.is_set("lr-schedule") ? a.get("lr-schedule") : "constant", a.get_double("lr"),
                   warmup);
    s["lr-schedule"] = a.is_set("lr-schedule") ? a.get("lr-schedule") : "constant";
    s["warmup-epochs"] = std::to_string(warmup);
  }
  if (a.is_set("save-best")) {
    if (a.get("save-best").empty()) throw UsageError("--save-best needs a MONITOR");
    s["save-best"] = a.get("save-best");
  }
  s["tensorboard"] = a.is_set("no-tensorboard") ? "off" : "on";
  s["log-every"] = std::to_string(whole_number(a.get("log-every"), "log-every", "N"));
}

TrainCallbacks make_train_callbacks(const Settings& s, const Setup& setup, bool has_validation,
                                    const std::string& out, bool writes_files) {
  const Network& net = *setup.network;
  TrainCallbacks t;
  t.list.push_back(std::make_shared<callbacks::TerminateOnNaN>());
  if (const std::string schedule = optional_setting(s, "lr-schedule"); !schedule.empty()) {
    const int warmup =
        whole_number(optional_setting(s, "warmup-epochs", "0"), "warmup-epochs", "N");
    const auto parsed = parse_schedule(schedule, setting_number(s, "lr"), warmup);
    t.list.push_back(std::make_shared<callbacks::LearningRateScheduler>(parsed));
    t.descriptions.push_back("learning rate: " + parsed.describe());
  }
  if (const std::string plateau = optional_setting(s, "reduce-lr-on-plateau"); !plateau.empty()) {
    const auto o = parse_plateau(plateau);
    check_flag_monitor(o.monitor, "reduce-lr-on-plateau", net, has_validation);
    t.list.push_back(std::make_shared<callbacks::ReduceLROnPlateau>(o));
    t.descriptions.push_back(cat("reduce the learning rate x", o.factor, " when ", o.monitor,
                                 " has not improved for ", o.patience, " epochs"));
  }
  const std::string early = optional_setting(s, "early-stopping");
  const bool restore = optional_setting(s, "restore-best-weights") == "yes";
  std::string best_monitor = optional_setting(s, "save-best");
  if (restore) best_monitor = parse_early_stopping(early).monitor;
  if (!best_monitor.empty()) {
    check_flag_monitor(best_monitor, restore ? "early-stopping" : "save-best", net, has_validation);
    if (writes_files)
      t.list.push_back(
          std::make_shared<callbacks::ModelCheckpoint>(callbacks::ModelCheckpointOptions{
              .dir = run_file(out, kBestDir), .monitor = best_monitor}));
    t.descriptions.push_back(cat("keep the best ", best_monitor, " in ", run_file(out, kBestDir)));
  }
  if (!early.empty()) {
    const auto spec = parse_early_stopping(early);
    check_flag_monitor(spec.monitor, "early-stopping", net, has_validation);
    callbacks::EarlyStoppingOptions o;
    o.monitor = spec.monitor;
    o.patience = spec.patience;
    o.restore_best_weights = restore;
    if (restore) {
      const std::string best = run_file(out, kBestDir);
      o.load_saved_best = [best, writes_files](Network& n) {
        if (writes_files) load_parameters(best, n);
      };
    }
    t.list.push_back(std::make_shared<callbacks::EarlyStopping>(o));
    t.descriptions.push_back(cat("stop early when ", spec.monitor, " has not improved for ",
                                 spec.patience, " epochs",
                                 restore ? ", then restore the best epoch's weights" : ""));
  }
  if (writes_files)
    t.list.push_back(std::make_shared<callbacks::CSVLogger>(run_file(out, "metrics.csv")));
  if (writes_files && optional_setting(s, "tensorboard", "on") == "on") {
    watch::TensorBoardOptions o;
    o.log_dir = run_file(out, kTensorBoardDir);
    o.log_every = whole_number(optional_setting(s, "log-every", "100"), "log-every", "N");
    o.config_text = models::to_toml(setup.config);
    o.sample_data = &setup.data.test;
    for (int64_t i = 0; i < std::min<int64_t>(kSampleCount, setup.data.test.size()); ++i)
      o.sample_rows.push_back(i);
    o.value_names = task_value_names(setup);
    t.list.push_back(std::make_shared<watch::TensorBoard>(o));
    t.descriptions.push_back(
        cat("TensorBoard event files in ", o.log_dir, " (tensorboard --logdir ", o.log_dir, ")"));
  }
  return t;
}

void add_callback_state(const Callbacks& callbacks, std::map<std::string, std::string>& metadata) {
  for (const auto& [key, value] : callbacks_state(callbacks)) metadata[kStatePrefix + key] = value;
}

void restore_callback_state(const Callbacks& callbacks,
                            const std::map<std::string, std::string>& metadata) {
  std::map<std::string, std::string> state;
  const std::string prefix = kStatePrefix;
  for (const auto& [key, value] : metadata)
    if (key.rfind(prefix, 0) == 0) state[key.substr(prefix.size())] = value;
  load_callbacks_state(callbacks, state);
}

std::string optional_setting(const Settings& s, const std::string& key,
                             const std::string& fallback) {
  const auto it = s.find(key);
  return it == s.end() ? fallback : it->second;
}

}  // namespace polytask::cli
