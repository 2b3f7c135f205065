#include "engine/callbacks/monitored.h"

#include <cmath>
#include <limits>

#include "kernels/error.h"

namespace polytask::callbacks {

Monitored::Monitored(std::string key, const std::string& mode, double min_delta, std::string who)
    : key_(std::move(key)),
      who_(std::move(who)),
      maximize_(monitor_maximizes(key_, mode, who_)),
      min_delta_(std::abs(min_delta)) {
  if (!std::isfinite(min_delta)) fail(who_, ": min_delta must be finite, got ", min_delta);
}

double Monitored::worst() const {
  return maximize_ ? -std::numeric_limits<double>::infinity()
                   : std::numeric_limits<double>::infinity();
}

bool Monitored::improves(double current, double reference) const {
  return maximize_ ? current - min_delta_ > reference : current + min_delta_ < reference;
}

void Monitored::check(const TrainingContext& context) const {
  check_monitor(key_, context.network, context.has_validation, who_);
}

double Monitored::read(const Logs& logs) const {
  const auto it = logs.find(key_);
  if (it == logs.end()) fail(who_, ": the epoch's logs have no '", key_, "'");
  return it->second;
}

}  // namespace polytask::callbacks
