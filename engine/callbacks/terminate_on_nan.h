// Keras' TerminateOnNaN, as an error: training ends with one line naming the quantity and the
// epoch when any loss in the epoch's logs (training or validation) is NaN or infinite. The
// trainer itself refuses a non-finite training loss at the step it appears, before the update
// (FitOptions); this also catches what only validation shows (e.g. BatchNorm statistics that
// blew up), before the epoch's checkpoint is written.
#pragma once

#include "engine/callback.h"

namespace polytask::callbacks {

class TerminateOnNaN final : public Callback {
 public:
  std::string name() const override { return "terminate_on_nan"; }
  void on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext& context) override;
};

}  // namespace polytask::callbacks
