// A training run's history as the trainer writes it (cli/metrics_json.h): metrics.jsonl, one
// JSON object per epoch. Read back here to draw the run's curves.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace polytask::watch {

struct EpochRecord {
  int epoch = 0;
  // The line's top-level numeric keys ("loss", "digit_accuracy", "val_digit_loss", "lr", ...);
  // null (undefined, e.g. a metric of an empty pass) reads as NaN.
  std::map<std::string, double> values;
  // The balancer's mean weight per head over the epoch: the "weights" object (null -> NaN).
  std::map<std::string, double> weights;
};

struct RunHistory {
  std::string label;               // legend text, e.g. the run directory's name
  std::string balancer;            // the first line's "balancer", empty when absent
  std::vector<std::string> tasks;  // head names in file order
  std::vector<EpochRecord> epochs;

  // The metric keys of head `task` other than its loss, e.g. {"accuracy"} or {"mae"}: the
  // suffixes m of training keys "<task>_<m>" (sorted). Keys of another head whose name starts
  // with "<task>_" are not counted.
  std::vector<std::string> metrics_of(const std::string& task) const;
};

// Reads metrics.jsonl. The heads come from the first line's "weights" keys (in file order), or
// from its "<task>_loss" keys when it has no weights. Blank lines are skipped. Throws
// polytask::Error naming the file when it is missing or has no epochs ("no epochs yet"), and
// the file and line number for a line that is not a JSON object with an integer "epoch".
RunHistory read_run_history(const std::string& metrics_jsonl_path, const std::string& label);

}  // namespace polytask::watch
