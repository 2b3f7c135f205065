// The one seam through which training is watched and steered, with Keras' names and semantics:
// Trainer::fit calls every callback of FitOptions::callbacks at train begin/end, epoch
// begin/end and every N steps, in list order. A callback may change the learning rate (through
// the optimiser: on the GPU the rate is staged into device memory with each step, so a change
// neither re-captures the step's CUDA graph nor waits for the device) and may stop training.
// The built-ins are in engine/callbacks/ (TensorBoard in watch/); user code implements the same
// interface (docs/callbacks.md).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace polytask {

class Network;
class Optimizer;
struct EpochLog;
struct TaskTotals;

// Keras' logs: numbers by Keras key. "loss" (Σ_t c_t · loss_t with the configured weights),
// "<task>_loss", "<task>_<metric>" ("digit_accuracy", "brightness_mae"), the same with "val_"
// for validation, and "learning_rate" (what the epoch trained with).
using Logs = std::map<std::string, double>;

// What callbacks see and steer during one fit().
struct TrainingContext {
  Network& network;
  Optimizer& optimizer;
  int epochs = 0;         // the last epoch fit() runs (1-based)
  int initial_epoch = 0;  // epochs done before this fit() (resuming)
  int64_t steps_per_epoch = 0;
  bool has_validation = false;
  std::ostream* log = nullptr;  // where callbacks say what they did ("reducing the learning
                                // rate to 1e-4"); nullptr: silent
  // Set by a callback: fit() ends after the current epoch (Keras' model.stop_training). Checked
  // before each epoch too, so a resumed run that had stopped stays stopped.
  bool stop_training = false;
};

class Callback {
 public:
  virtual ~Callback() = default;
  // The key its state is saved under ("early_stopping"); unique among a fit's callbacks.
  virtual std::string name() const = 0;
  virtual void on_train_begin(TrainingContext&) {}
  // Before epoch `epoch` (1-based) trains: a learning-rate schedule sets the epoch's rate here.
  virtual void on_epoch_begin(int /*epoch*/, TrainingContext&) {}
  // Called after every steps_interval()-th optimiser step of the run (0: never), with the
  // epoch's running means so far ("loss", "<task>_loss", "<task>_<metric>", "learning_rate");
  // `step` counts the run's steps from its start. On the GPU, reading them back waits for the
  // device: keep the interval in the tens or more.
  virtual int64_t steps_interval() const { return 0; }
  virtual void on_steps(int64_t /*step*/, const Logs&, TrainingContext&) {}
  // After the epoch's validation pass. A changed learning rate applies from the next epoch.
  virtual void on_epoch_end(const EpochLog&, const Logs&, TrainingContext&) {}
  virtual void on_train_end(TrainingContext&) {}
  // What a resumed run needs to decide as the uninterrupted run would (best value, patience
  // counter...): saved with every checkpoint, given back before on_train_begin.
  virtual std::map<std::string, std::string> state() const { return {}; }
  virtual void load_state(const std::map<std::string, std::string>&) {}
};

using Callbacks = std::vector<std::shared_ptr<Callback>>;

// The Keras keys and values of `totals` in Keras' order ("loss", each "<task>_loss", then each
// "<task>_<metric>"), each key with `prefix` ("val_", "test_").
std::vector<std::pair<std::string, double>> totals_logs(const std::vector<TaskTotals>& totals,
                                                        const Network& net,
                                                        const std::string& prefix);
// An epoch's logs: its training and validation totals, and "learning_rate".
Logs epoch_logs(const EpochLog& log, const Network& net);

// The keys a monitor may name (training keys, and val_ keys when there is validation data).
std::vector<std::string> monitor_keys(const Network& net, bool with_validation);
// Throws "<who>: unknown monitor 'x' (valid: loss, digit_loss, ...)" for a key not in
// monitor_keys, before training starts.
void check_monitor(const std::string& monitor, const Network& net, bool with_validation,
                   const std::string& who);

// Whether a larger value of `monitor` is better: Keras' mode "auto" (accuracies up, losses and
// errors down); "min" and "max" say so themselves. Other modes are refused naming `who`.
bool monitor_maximizes(const std::string& monitor, const std::string& mode, const std::string& who);

// Every callback's state as one map ("early_stopping.wait" -> "2") for a checkpoint, and back.
std::map<std::string, std::string> callbacks_state(const Callbacks& callbacks);
// Hands each callback the keys under its name; keys of callbacks not in the list are ignored
// (a run resumed with a callback removed).
void load_callbacks_state(const Callbacks& callbacks,
                          const std::map<std::string, std::string>& state);

// Numbers in state maps: written with all 17 digits, so a resumed run compares exactly.
std::string state_number(double v);
double parse_state_number(const std::map<std::string, std::string>& state, const std::string& key,
                          double fallback);

}  // namespace polytask
