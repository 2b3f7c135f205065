// Keras' ModelCheckpoint with save_best_only: after an epoch whose monitored value beats every
// earlier one, the network's parameters are saved into `dir` (the checkpoint layout of
// engine/checkpoint.h, so a kill or a full disk mid-save leaves the previous best whole). The
// training state beside them records the epoch, the monitor and its value. The run's last
// epoch is saved by the trainer's caller as always; this keeps the best beside it.
#pragma once

#include <string>

#include "engine/callback.h"
#include "engine/callbacks/monitored.h"

namespace polytask::callbacks {

struct ModelCheckpointOptions {
  std::string dir;  // e.g. RUN/best
  std::string monitor = "val_loss";
  std::string mode = "auto";
};

class ModelCheckpoint final : public Callback {
 public:
  explicit ModelCheckpoint(ModelCheckpointOptions options);
  std::string name() const override { return "model_checkpoint"; }
  void on_train_begin(TrainingContext& context) override;
  void on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext& context) override;
  std::map<std::string, std::string> state() const override;
  void load_state(const std::map<std::string, std::string>& state) override;

  double best() const { return best_; }
  int best_epoch() const { return best_epoch_; }

 private:
  ModelCheckpointOptions options_;
  Monitored monitored_;
  double best_;
  int best_epoch_ = 0;
};

}  // namespace polytask::callbacks
