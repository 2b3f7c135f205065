#include "engine/callbacks/terminate_on_nan.h"

#include <cmath>

#include "engine/trainer.h"
#include "kernels/error.h"

namespace polytask::callbacks {

void TerminateOnNaN::on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext&) {
  for (const auto& [key, value] : logs)
    if (key.ends_with("loss") && !std::isfinite(value))
      fail("TerminateOnNaN: ", key, " became ", value, " in epoch ", log.epoch,
           "; training stopped before saving it (lower the learning rate or check the data)");
}

}  // namespace polytask::callbacks
