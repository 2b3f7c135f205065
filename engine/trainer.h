// The training loop users see: shuffled mini-batches, a validation split taken from the end of
// the training set (Keras' validation_split), per-head loss and metrics every epoch, a progress
// bar on a terminal, and a clear error the moment a loss stops being finite — on the GPU, where
// reading a loss back every step would stall the device, at the next progress redraw or the
// end of the epoch, before anything is saved. On the GPU the data is uploaded once and every
// batch is gathered on the device (engine/device_data.h).
//
// After each epoch the fan-out's balance diagnostics (weights, gradient norms, gradient
// cosines) go into the log, then the balancer sees the epoch's mean losses (FanOut::end_epoch)
// and may change the weights for the next epoch — before on_epoch, so a checkpoint written
// there holds the balancer's state for the next epoch.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <vector>

#include "engine/callback.h"
#include "engine/dataset.h"
#include "engine/network.h"
#include "engine/optimizer.h"

namespace polytask {

class DeviceDataset;

struct FitOptions {
  int epochs = 5;                 // the last epoch to run (1-based), as in Keras' fit
  int initial_epoch = 0;          // epochs already done (resuming): training starts at the next one
  int64_t batch_size = 128;       // at most the network's max_batch
  double validation_split = 0.0;  // fraction in [0, 1) taken from the end of the data
  bool shuffle = true;
  uint64_t seed = 0;            // the shuffling order: epoch e's order depends on (seed, e) only,
                                // so a resumed run shuffles exactly as an uninterrupted one
  std::ostream* log = nullptr;  // per-epoch lines (nullptr: silent)
  bool progress = false;        // a live progress bar inside each epoch (for terminals)
  // On the GPU, replay each training step as one CUDA graph (captured after a warm-up step,
  // one per batch size) when the network allows it (Network::graph_capturable: the static
  // balancer), and not while POLYTASK_CUDA_SYNC checks every launch (kernels/cuda/launch.h).
  // Results are the same bits either way.
  bool cuda_graphs = true;
  // Called in list order at train begin/end, epoch begin/end and every N steps
  // (engine/callback.h); they may change the learning rate and stop training.
  Callbacks callbacks;
};

struct EpochLog {
  int epoch = 0;  // 1-based
  double seconds = 0;
  std::vector<TaskTotals> train, validation;  // validation empty without a split
  // Σ_t c_t · mean loss_t with the configured loss weights c_t (FanOut::loss_weight): the same
  // yardstick whatever the balancer; the weights it used are in `balance`.
  double train_loss = 0, validation_loss = 0;
  // The balancer's epoch: mean weights, gradient norms at the fan-out, pairwise cosines.
  BalanceDiagnostics balance;
  // Training steps launched as a captured CUDA graph (FitOptions::cuda_graphs).
  int64_t graphed_steps = 0;
  // The optimiser's learning rate during the epoch (after the callbacks' on_epoch_begin).
  double learning_rate = 0;
  // The soft-sharing penalty at the epoch's end (Network::soft_sharing_penalty); 0 without.
  double soft_sharing_penalty = 0;
  // Data-parallel: seconds of the epoch this rank spent in host-side collectives (sums of
  // gradients, losses, Gram matrices and totals, waiting for slower ranks included).
  double communication_seconds = 0;
};

// "  weights: digit 1.000 parity 0.500 | grad norm: digit 0.12 parity 0.0513 |
//  cos(digit,parity) -0.13 (62% of steps < 0)" (one line)
std::string format_balance(const BalanceDiagnostics& d, const FanOut& fan_out);

class Trainer {
 public:
  Trainer(Network& network, Optimizer& optimizer);

  // Trains for options.epochs epochs, or until a callback stops training; `on_epoch`
  // (optional) is called after each epoch, after every callback's on_epoch_end — where the
  // run's checkpoint is saved, holding the callbacks' decisions of that epoch.
  std::vector<EpochLog> fit(const Dataset& data, const FitOptions& options,
                            const std::function<void(const EpochLog&)>& on_epoch = {});
  // One optimiser step on rows `indices` of `data`; returns the weighted total loss.
  double train_step(const Dataset& data, const int64_t* indices, int64_t n,
                    std::vector<TaskTotals>* totals = nullptr);
  // Inference-mode losses and metrics over all of `data`. Data-parallel (the network's
  // communicator has several ranks): each rank evaluates its share of the rows and every rank
  // returns the sums over all of them.
  std::vector<TaskTotals> evaluate(const Dataset& data, int64_t batch_size);

  // "loss: 0.6317 - digit_loss: 0.4527 - digit_accuracy: 0.8612 - ..." (prefix "val_" etc.);
  // "loss" is weighted_loss: Σ_t c_t · loss_t with the configured loss weights.
  std::string format_metrics(const std::vector<TaskTotals>& totals,
                             const std::string& prefix) const;
  double weighted_loss(const std::vector<TaskTotals>& totals) const;

 private:
  // Copies rows `indices` of the dataset into the network's input and target buffers.
  void load(const Dataset& data, const int64_t* indices, int64_t n, bool with_targets);
  // The GPU's step and evaluation: batches gathered on the device from data uploaded once,
  // totals kept on the device (indices: device int32 row numbers); with graphs, each replayed
  // from a CUDA graph per batch size after a warm-up.
  struct StepGraphs;
  void train_step_on_device(const DeviceDataset& data, const int32_t* indices, int64_t n,
                            std::vector<TaskTotals>& totals);
  // The same step replayed from a CUDA graph (captured on the second step of each batch size).
  // Returns whether the step was launched from a graph.
  bool train_step_graphed(StepGraphs& graphs, const DeviceDataset& data, const int32_t* indices,
                          int64_t n, int64_t global_n, std::vector<TaskTotals>& totals);
  // evaluate() over all of `data` on this rank alone.
  std::vector<TaskTotals> evaluate_rows(const Dataset& data, int64_t batch_size);
  // This rank's share of `rows` rows (all of them in one process).
  Shard my_shard(int64_t rows) const;
  std::vector<TaskTotals> evaluate_on_device(const DeviceDataset& data, const int32_t* indices,
                                             int64_t count, int64_t batch_size,
                                             StepGraphs* graphs);

  // The callbacks due after the run's current step, with the epoch's running means.
  void run_step_callbacks(const Callbacks& callbacks, EpochLog& log, TrainingContext& context);

  Network& network_;
  Optimizer& optimizer_;
};

}  // namespace polytask
