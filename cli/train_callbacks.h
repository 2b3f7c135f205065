// What `polytask train`'s flags turn into: the callbacks of the fit (engine/callback.h). The
// flags are checked when parsed, kept in run.conf so that --resume continues with the same
// callbacks, and their monitors checked against the model's Keras keys before training starts.
#pragma once

#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/setup.h"
#include "engine/callback.h"

namespace polytask::cli {

// The flags, as run.conf keys; a resumed run may not change them.
inline constexpr const char* kCallbackOptions[] = {"early-stopping",       "restore-best-weights",
                                                   "reduce-lr-on-plateau", "lr-schedule",
                                                   "warmup-epochs",        "save-best",
                                                   "no-tensorboard",       "log-every"};

void declare_callback_options(Args& a);
// A setting that older run.conf files do not have: `fallback` then.
std::string optional_setting(const Settings& s, const std::string& key,
                             const std::string& fallback = "");
// Checks the flags' forms and records them in `s` (monitors are checked by make_callbacks).
void callback_settings(const Args& a, Settings& s);

struct TrainCallbacks {
  Callbacks list;
  std::vector<std::string> descriptions;  // one line each, for the run's header
};

// The run's callbacks from its settings, in the order they act at an epoch's end:
// TerminateOnNaN, the learning-rate schedule or ReduceLROnPlateau, ModelCheckpoint (RUN/best),
// EarlyStopping, CSVLogger (RUN/metrics.csv, always), TensorBoard (RUN/tb, unless turned off).
// Throws a UsageError naming the flag for a monitor the model does not log.
// The TensorBoard callback draws the first 16 test examples' predictions each epoch.
// writes_files false (data-parallel ranks other than 0): the callbacks that steer training are
// the same, those that only write the run directory (ModelCheckpoint, CSVLogger, TensorBoard)
// are left out, and EarlyStopping's restore of the best weights reads nothing (rank 0's
// parameters are broadcast after training instead).
TrainCallbacks make_train_callbacks(const Settings& s, const Setup& setup, bool has_validation,
                                    const std::string& out, bool writes_files = true);

// Callback state inside a checkpoint's metadata, under "callbacks.".
void add_callback_state(const Callbacks& callbacks, std::map<std::string, std::string>& metadata);
void restore_callback_state(const Callbacks& callbacks,
                            const std::map<std::string, std::string>& metadata);

}  // namespace polytask::cli
