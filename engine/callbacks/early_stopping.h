// Keras' EarlyStopping: stop when the monitored value has not improved for `patience` epochs,
// optionally putting back the weights of the best epoch.
#pragma once

#include <functional>
#include <limits>
#include <string>

#include "engine/callback.h"
#include "engine/callbacks/monitored.h"
#include "engine/tensor.h"

namespace polytask::callbacks {

struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  std::string mode = "auto";
  int patience = 0;
  double min_delta = 0;
  // When finite: epochs count as not improving until the value beats it (Keras' baseline).
  double baseline = std::numeric_limits<double>::quiet_NaN();
  bool restore_best_weights = false;
  // Puts the best epoch's weights back when they are not in memory: a resumed run whose best
  // epoch came before the resume (e.g. load_parameters from a ModelCheckpoint's directory).
  // Without it such a run is refused at train begin, rather than stopping with the wrong
  // weights.
  std::function<void(Network&)> load_saved_best;
};

class EarlyStopping final : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options);
  std::string name() const override { return "early_stopping"; }
  void on_train_begin(TrainingContext& context) override;
  void on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext& context) override;
  std::map<std::string, std::string> state() const override;
  void load_state(const std::map<std::string, std::string>& state) override;

  double best() const { return best_; }
  int best_epoch() const { return best_epoch_; }
  int wait() const { return wait_; }
  int stopped_epoch() const { return stopped_epoch_; }  // 0 while training goes on

 private:
  void restore_best(Network& network);

  EarlyStoppingOptions options_;
  Monitored monitored_;
  double best_;
  int best_epoch_ = 0, wait_ = 0, stopped_epoch_ = 0;
  Tensor best_values_, best_state_;  // host copies of the best epoch's parameters
};

}  // namespace polytask::callbacks
