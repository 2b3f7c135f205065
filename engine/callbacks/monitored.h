// The monitored quantity shared by EarlyStopping, ReduceLROnPlateau and ModelCheckpoint: a Keras
// key, which way is better, and by how much a value must beat the best to count.
#pragma once

#include <string>

#include "engine/callback.h"

namespace polytask::callbacks {

class Monitored {
 public:
  // `who` names the callback in errors; `mode` is auto, min or max (monitor_maximizes).
  Monitored(std::string key, const std::string& mode, double min_delta, std::string who);

  const std::string& key() const { return key_; }
  bool maximizes() const { return maximize_; }
  // The worst possible value: anything finite improves on it.
  double worst() const;
  // Keras' test: better than `reference` by more than min_delta (NaN never improves).
  bool improves(double current, double reference) const;
  // Refuses a key the fit will not log, before the first epoch.
  void check(const TrainingContext& context) const;
  double read(const Logs& logs) const;

 private:
  std::string key_, who_;
  bool maximize_;
  double min_delta_;
};

}  // namespace polytask::callbacks
