// Keras' LearningRateScheduler: before each epoch the rate becomes schedule(epoch, rate), epoch
// counted from 0 as Keras does. The built-in schedules (step, exponential, cosine, each with an
// optional linear warm-up) are pure functions of the epoch and the base rate, so a resumed run
// sets exactly the rates of an uninterrupted one.
#pragma once

#include <functional>
#include <string>

#include "engine/callback.h"

namespace polytask::callbacks {

struct LrSchedule {
  enum class Kind { Constant, Step, Exponential, Cosine };
  Kind kind = Kind::Constant;
  double base_lr = 1e-3;
  int warmup_epochs = 0;  // epochs 0..W-1 train at base · (e+1)/W, then the schedule starts
  int step_every = 10;    // step: × step_factor every step_every epochs
  double step_factor = 0.5;
  double decay = 0.9;  // exponential: × decay per epoch
  double min_lr = 0;   // cosine: the rate it decays to at the last epoch's end

  // The rate of epoch `epoch` (0-based) of a fit whose last epoch is `epochs` (1-based count).
  double rate(int epoch, int epochs) const;
  // "cosine", "step:EVERY:FACTOR", "exponential:DECAY", "constant" (with warm-up); throws on
  // anything else, naming the accepted forms.
  static LrSchedule parse(const std::string& text, double base_lr, int warmup_epochs);
  std::string describe() const;  // "cosine from 0.001 with 2 warm-up epochs"
};

class LearningRateScheduler final : public Callback {
 public:
  // schedule(epoch from 0, current rate) -> the epoch's rate.
  explicit LearningRateScheduler(std::function<double(int, double)> schedule);
  explicit LearningRateScheduler(const LrSchedule& schedule);
  std::string name() const override { return "learning_rate_scheduler"; }
  void on_epoch_begin(int epoch, TrainingContext& context) override;

 private:
  std::function<double(int, double)> schedule_;
  LrSchedule builtin_;
  bool is_builtin_ = false;
};

}  // namespace polytask::callbacks
