#include "engine/callbacks/early_stopping.h"

#include <cmath>
#include <ostream>

#include "engine/network.h"
#include "engine/trainer.h"
#include "kernels/error.h"

namespace polytask::callbacks {

namespace {

Tensor host_copy(const Tensor& t) {
  Tensor copy = Tensor::empty(t.shape(), t.dtype(), Device::CPU);
  copy.copy_from(t);
  return copy;
}

}  // namespace

EarlyStopping::EarlyStopping(EarlyStoppingOptions options)
    : options_(std::move(options)),
      monitored_(options_.monitor, options_.mode, options_.min_delta, "EarlyStopping"),
      best_(monitored_.worst()) {
  if (options_.patience < 0) fail("EarlyStopping: patience must be >= 0, got ", options_.patience);
}

void EarlyStopping::on_train_begin(TrainingContext& context) {
  monitored_.check(context);
  if (stopped_epoch_ > 0) {  // the run had stopped: a resumed run stays stopped, as it would have
    context.stop_training = true;
    if (context.log)
      *context.log << "EarlyStopping: this run stopped at epoch " << stopped_epoch_ << " ("
                   << options_.monitor << " did not improve for " << options_.patience
                   << " epochs); nothing more to train\n";
    return;
  }
  if (options_.restore_best_weights && best_epoch_ > 0 && !options_.load_saved_best)
    fail("EarlyStopping: restore_best_weights after resuming needs the best epoch's weights (",
         best_epoch_, ") from a saved copy, and none was given");
}

void EarlyStopping::on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext& context) {
  const double current = monitored_.read(logs);
  ++wait_;
  if (monitored_.improves(current, best_)) {
    best_ = current;
    best_epoch_ = log.epoch;
    if (options_.restore_best_weights) {
      const ParameterSet& p = context.network.parameters();
      best_values_ = host_copy(p.values);
      if (p.state.defined() && p.state.numel() > 0) best_state_ = host_copy(p.state);
    }
    if (!std::isfinite(options_.baseline) || monitored_.improves(current, options_.baseline)) {
      wait_ = 0;
      return;
    }
  }
  // Keras does not stop after the first epoch, whatever the patience: the run's first, so that
  // a resumed fit stops where the uninterrupted one would.
  if (wait_ >= options_.patience && log.epoch > 1) {
    stopped_epoch_ = log.epoch;
    context.stop_training = true;
    if (context.log)
      *context.log << "Epoch " << log.epoch << ": early stopping (" << options_.monitor
                   << " has not improved on " << best_ << " from epoch " << best_epoch_ << " for "
                   << wait_ << " epochs)\n";
    if (options_.restore_best_weights && best_epoch_ > 0) restore_best(context.network);
  }
}

void EarlyStopping::restore_best(Network& network) {
  ParameterSet& p = network.parameters();
  if (best_values_.defined()) {
    p.values.copy_from(best_values_);
    if (best_state_.defined()) p.state.copy_from(best_state_);
  } else {
    options_.load_saved_best(network);  // on_train_begin made sure it is there
  }
}

std::map<std::string, std::string> EarlyStopping::state() const {
  return {{"best", state_number(best_)},
          {"best_epoch", std::to_string(best_epoch_)},
          {"wait", std::to_string(wait_)},
          {"stopped_epoch", std::to_string(stopped_epoch_)}};
}

void EarlyStopping::load_state(const std::map<std::string, std::string>& state) {
  best_ = parse_state_number(state, "best", monitored_.worst());
  best_epoch_ = int(parse_state_number(state, "best_epoch", 0));
  wait_ = int(parse_state_number(state, "wait", 0));
  stopped_epoch_ = int(parse_state_number(state, "stopped_epoch", 0));
}

}  // namespace polytask::callbacks
