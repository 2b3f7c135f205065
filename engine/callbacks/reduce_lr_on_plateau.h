// Keras' ReduceLROnPlateau: multiply the learning rate by `factor` when the monitored value has
// not improved for `patience` epochs, then wait `cooldown` epochs before counting again.
#pragma once

#include <string>

#include "engine/callback.h"
#include "engine/callbacks/monitored.h"

namespace polytask::callbacks {

struct ReduceLROnPlateauOptions {
  std::string monitor = "val_loss";
  std::string mode = "auto";
  double factor = 0.1;  // in (0, 1)
  int patience = 10;
  double min_delta = 1e-4;
  int cooldown = 0;
  double min_lr = 0;
};

class ReduceLROnPlateau final : public Callback {
 public:
  explicit ReduceLROnPlateau(ReduceLROnPlateauOptions options);
  std::string name() const override { return "reduce_lr_on_plateau"; }
  void on_train_begin(TrainingContext& context) override;
  void on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext& context) override;
  std::map<std::string, std::string> state() const override;
  void load_state(const std::map<std::string, std::string>& state) override;

 private:
  ReduceLROnPlateauOptions options_;
  Monitored monitored_;
  double best_;
  int wait_ = 0, cooldown_counter_ = 0;
};

}  // namespace polytask::callbacks
