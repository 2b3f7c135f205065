#include "engine/callbacks/reduce_lr_on_plateau.h"

#include <algorithm>
#include <cmath>
#include <ostream>

#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "kernels/error.h"

namespace polytask::callbacks {

ReduceLROnPlateau::ReduceLROnPlateau(ReduceLROnPlateauOptions options)
    : options_(std::move(options)),
      monitored_(options_.monitor, options_.mode, options_.min_delta, "ReduceLROnPlateau"),
      best_(monitored_.worst()) {
  if (!(options_.factor > 0 && options_.factor < 1))
    fail("ReduceLROnPlateau: factor must be in (0, 1), got ", options_.factor);
  if (options_.patience < 0)
    fail("ReduceLROnPlateau: patience must be >= 0, got ", options_.patience);
  if (options_.cooldown < 0)
    fail("ReduceLROnPlateau: cooldown must be >= 0, got ", options_.cooldown);
  if (!(options_.min_lr >= 0))
    fail("ReduceLROnPlateau: min_lr must be >= 0, got ", options_.min_lr);
}

void ReduceLROnPlateau::on_train_begin(TrainingContext& context) { monitored_.check(context); }

// Keras' order: leaving cooldown resets the wait; an improvement resets it; otherwise, outside
// cooldown, one more epoch of waiting, and at `patience` the rate drops and cooldown starts.
void ReduceLROnPlateau::on_epoch_end(const EpochLog& log, const Logs& logs,
                                     TrainingContext& context) {
  const double current = monitored_.read(logs);
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    wait_ = 0;
  }
  if (monitored_.improves(current, best_)) {
    best_ = current;
    wait_ = 0;
    return;
  }
  if (cooldown_counter_ > 0) return;
  if (++wait_ < options_.patience) return;
  const double old_lr = context.optimizer.learning_rate();
  // The optimiser keeps its rate in float: compare there, so a rate already at min_lr stays.
  if (float(old_lr) > float(options_.min_lr)) {
    const double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
    context.optimizer.set_learning_rate(new_lr);
    if (context.log)
      *context.log << "Epoch " << log.epoch << ": ReduceLROnPlateau reducing learning rate to "
                   << new_lr << " (" << options_.monitor << " has not improved on " << best_
                   << " for " << wait_ << " epochs)\n";
    cooldown_counter_ = options_.cooldown;
    wait_ = 0;
  }
}

std::map<std::string, std::string> ReduceLROnPlateau::state() const {
  return {{"best", state_number(best_)},
          {"wait", std::to_string(wait_)},
          {"cooldown_counter", std::to_string(cooldown_counter_)}};
}

void ReduceLROnPlateau::load_state(const std::map<std::string, std::string>& state) {
  best_ = parse_state_number(state, "best", monitored_.worst());
  wait_ = int(parse_state_number(state, "wait", 0));
  cooldown_counter_ = int(parse_state_number(state, "cooldown_counter", 0));
}

}  // namespace polytask::callbacks
