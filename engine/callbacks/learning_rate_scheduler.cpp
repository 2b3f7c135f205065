#include "engine/callbacks/learning_rate_scheduler.h"

#include <cmath>
#include <numbers>
#include <sstream>

#include "engine/optimizer.h"
#include "kernels/error.h"

namespace polytask::callbacks {

namespace {

const char* kForms = "cosine, step:EVERY:FACTOR, exponential:DECAY or constant";

double number_in(const std::string& text, const std::string& what, const std::string& spec) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v))
    fail("learning-rate schedule '", spec, "': ", what, " '", text, "' is not a number");
  return v;
}

}  // namespace

double LrSchedule::rate(int epoch, int epochs) const {
  if (epoch < warmup_epochs) return base_lr * double(epoch + 1) / double(warmup_epochs);
  const int e = epoch - warmup_epochs;  // epochs since the warm-up
  switch (kind) {
    case Kind::Constant:
      return base_lr;
    case Kind::Step:
      return base_lr * std::pow(step_factor, double(e / step_every));
    case Kind::Exponential:
      return base_lr * std::pow(decay, double(e));
    case Kind::Cosine: {
      // Half a cosine over the epochs after the warm-up: base at the first, min_lr after the last.
      const int span = std::max(epochs - warmup_epochs, 1);
      const double progress = std::min(double(e) / double(span), 1.0);
      return min_lr + 0.5 * (base_lr - min_lr) * (1 + std::cos(std::numbers::pi * progress));
    }
  }
  return base_lr;
}

LrSchedule LrSchedule::parse(const std::string& text, double base_lr, int warmup_epochs) {
  LrSchedule s;
  s.base_lr = base_lr;
  s.warmup_epochs = warmup_epochs;
  if (warmup_epochs < 0) fail("warm-up epochs must be >= 0, got ", warmup_epochs);
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ':');) parts.push_back(part);
  const std::string kind = parts.empty() ? "" : parts[0];
  if (kind == "constant" && parts.size() == 1) {
    s.kind = Kind::Constant;
  } else if (kind == "cosine" && parts.size() == 1) {
    s.kind = Kind::Cosine;
  } else if (kind == "step" && parts.size() == 3) {
    s.kind = Kind::Step;
    const double every = number_in(parts[1], "EVERY", text);
    if (every < 1 || every != std::floor(every) || every > 1e6)
      fail("learning-rate schedule '", text, "': EVERY must be a whole number of epochs >= 1");
    s.step_every = int(every);
    s.step_factor = number_in(parts[2], "FACTOR", text);
    if (!(s.step_factor > 0)) fail("learning-rate schedule '", text, "': FACTOR must be positive");
  } else if (kind == "exponential" && parts.size() == 2) {
    s.kind = Kind::Exponential;
    s.decay = number_in(parts[1], "DECAY", text);
    if (!(s.decay > 0)) fail("learning-rate schedule '", text, "': DECAY must be positive");
  } else {
    fail("unknown learning-rate schedule '", text, "' (", kForms, ")");
  }
  return s;
}

std::string LrSchedule::describe() const {
  std::ostringstream out;
  switch (kind) {
    case Kind::Constant:
      out << "constant " << base_lr;
      break;
    case Kind::Step:
      out << "step from " << base_lr << ", x" << step_factor << " every " << step_every
          << " epochs";
      break;
    case Kind::Exponential:
      out << "exponential from " << base_lr << ", x" << decay << " per epoch";
      break;
    case Kind::Cosine:
      out << "cosine from " << base_lr << " to " << min_lr;
      break;
  }
  if (warmup_epochs > 0) out << " after " << warmup_epochs << " warm-up epochs";
  return out.str();
}

LearningRateScheduler::LearningRateScheduler(std::function<double(int, double)> schedule)
    : schedule_(std::move(schedule)) {
  if (!schedule_) fail("LearningRateScheduler: no schedule given");
}

LearningRateScheduler::LearningRateScheduler(const LrSchedule& schedule)
    : builtin_(schedule), is_builtin_(true) {}

void LearningRateScheduler::on_epoch_begin(int epoch, TrainingContext& context) {
  const int from_zero = epoch - 1;
  const double lr = is_builtin_ ? builtin_.rate(from_zero, context.epochs)
                                : schedule_(from_zero, context.optimizer.learning_rate());
  if (!(lr > 0) || !std::isfinite(lr))
    fail("LearningRateScheduler: the schedule gave learning rate ", lr, " for epoch ", epoch,
         " (it must be positive and finite)");
  context.optimizer.set_learning_rate(lr);
}

}  // namespace polytask::callbacks
