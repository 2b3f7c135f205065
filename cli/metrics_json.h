// The run directory's metrics files: metrics.jsonl (one object per epoch, Keras' history keys:
// loss, <task>_loss, <task>_<metric>, val_..., learning_rate, then the balancer's epoch: "balancer" (its
// name), "weights" and "grad_norm" ({task: mean over the epoch's steps}) and "grad_cosine"
// ({"a,b": mean cosine of the two tasks' gradients at the fan-out}; null where undefined) and
// "grad_conflict" ({"a,b": the fraction of steps where that cosine was negative})) and
// test_metrics.json.
#pragma once

#include <string>
#include <vector>

#include "engine/network.h"
#include "engine/trainer.h"

namespace polytask::cli {

std::string epoch_json(const EpochLog& log, const Network& net);
// With seconds >= 0, also "seconds": how long the pass took.
std::string totals_json(const std::vector<TaskTotals>& totals, const Network& net,
                        const std::string& prefix = "", double seconds = -1);
// The lines of an existing metrics.jsonl for epochs <= last_epoch (a resumed run drops any line
// written after its checkpoint); empty when the file does not exist.
std::vector<std::string> read_metric_lines(const std::string& path, int last_epoch);
std::string join_lines(const std::vector<std::string>& lines);

}  // namespace polytask::cli
