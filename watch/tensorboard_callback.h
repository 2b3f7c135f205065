// Keras' TensorBoard callback: event files TensorBoard reads, in Keras' layout and tag names.
//   LOG_DIR/train/       epoch_loss, epoch_<task>_loss, epoch_<task>_<metric>,
//                        epoch_learning_rate per epoch; batch_loss, batch_<task>_loss every
//                        N steps (step = the run's step count); the balancer's
//                        balancer/weight/<task>, balancer/grad_norm/<task>,
//                        balancer/grad_cosine/<a>,<b> and balancer/grad_conflict/<a>,<b>;
//                        a histogram per parameter ("conv1.weight"); the sample-predictions
//                        image; the resolved config as text (step 0)
//   LOG_DIR/validation/  the epoch_ scalars of the validation data
// Epoch-level events use the epoch (1-based) as step. Every epoch's events are flushed to disk
// before the epoch's checkpoint; a resumed run first drops any event written after its
// checkpoint (from a run killed in between), then appends in new files: no step is doubled or
// lost.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/callback.h"
#include "engine/dataset.h"
#include "watch/event_file.h"
#include "watch/predictions.h"

namespace polytask::watch {

struct TensorBoardOptions {
  std::string log_dir;      // e.g. RUN/tb
  int64_t log_every = 100;  // batch_ scalars every N steps (0: none)
  bool histograms = true;   // parameter histograms per epoch
  std::string config_text;  // written once as text, "config" (empty: none)
  // Sample predictions per epoch: `samples` rows of `sample_data` (not owned; must outlive the
  // fit) drawn as a grid of its image input; none when sample_rows is empty or the model has
  // no image input.
  const Dataset* sample_data = nullptr;
  std::vector<int64_t> sample_rows;
  ValueNames value_names;
};

class TensorBoard final : public Callback {
 public:
  explicit TensorBoard(TensorBoardOptions options);
  ~TensorBoard() override;
  std::string name() const override { return "tensorboard"; }
  void on_train_begin(TrainingContext& context) override;
  int64_t steps_interval() const override { return options_.log_every; }
  void on_steps(int64_t step, const Logs& logs, TrainingContext& context) override;
  void on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext& context) override;
  void on_train_end(TrainingContext& context) override;

 private:
  void write_balance(const EpochLog& log, const Network& net, int64_t step);
  void write_samples(Network& net, int64_t step);

  TensorBoardOptions options_;
  std::unique_ptr<EventWriter> train_, validation_;
};

}  // namespace polytask::watch
