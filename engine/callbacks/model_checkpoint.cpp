#include "engine/callbacks/model_checkpoint.h"

#include <ostream>

#include "engine/checkpoint.h"
#include "engine/trainer.h"
#include "kernels/error.h"

namespace polytask::callbacks {

ModelCheckpoint::ModelCheckpoint(ModelCheckpointOptions options)
    : options_(std::move(options)),
      monitored_(options_.monitor, options_.mode, 0, "ModelCheckpoint"),
      best_(monitored_.worst()) {
  if (options_.dir.empty()) fail("ModelCheckpoint: no directory given");
}

void ModelCheckpoint::on_train_begin(TrainingContext& context) { monitored_.check(context); }

void ModelCheckpoint::on_epoch_end(const EpochLog& log, const Logs& logs,
                                   TrainingContext& context) {
  const double current = monitored_.read(logs);
  if (!monitored_.improves(current, best_)) return;
  TrainingState state;
  state.epoch = log.epoch;
  state.metadata["monitor"] = options_.monitor;
  state.metadata["monitor_value"] = state_number(current);
  // Parameters only: the best model is for evaluation and prediction, not for resuming.
  save_checkpoint(options_.dir, context.network, nullptr, state);
  if (context.log)
    *context.log << "Epoch " << log.epoch << ": " << options_.monitor << " improved from " << best_
                 << " to " << current << ", saved to " << options_.dir << "\n";
  best_ = current;
  best_epoch_ = log.epoch;
}

std::map<std::string, std::string> ModelCheckpoint::state() const {
  return {{"best", state_number(best_)}, {"best_epoch", std::to_string(best_epoch_)}};
}

void ModelCheckpoint::load_state(const std::map<std::string, std::string>& state) {
  best_ = parse_state_number(state, "best", monitored_.worst());
  best_epoch_ = int(parse_state_number(state, "best_epoch", 0));
}

}  // namespace polytask::callbacks
