// Keras' CSVLogger: one row per epoch, columns "epoch" (1-based, as the console counts) then
// the logs' keys in sorted order, as Keras writes them. The file is rewritten whole and
// atomically each epoch (it is small), so a kill never leaves half a row; a resumed run keeps
// the rows of the epochs its checkpoint holds and drops any written after it.
#pragma once

#include <string>
#include <vector>

#include "engine/callback.h"

namespace polytask::callbacks {

class CSVLogger final : public Callback {
 public:
  explicit CSVLogger(std::string path);
  std::string name() const override { return "csv_logger"; }
  void on_train_begin(TrainingContext& context) override;
  void on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext& context) override;

 private:
  std::string path_;
  std::vector<std::string> keys_;  // the header's columns after "epoch"
  std::string text_;               // the file so far
};

}  // namespace polytask::callbacks
