#include "engine/trainer.h"

#include "engine/cuda_graph.h"
#include "engine/device_data.h"

#include <chrono>
#include <iomanip>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <ostream>
#include <random>
#include <sstream>

namespace polytask {

namespace {

// Copies rows of `src` (N, ...) selected by `indices` into rows [0, n) of `dst` (cap, ...).
void gather_rows(const Tensor& src, const int64_t* indices, int64_t n, const Tensor& dst,
                 const std::string& what) {
  if (!(src.shape().sample() == dst.shape().sample()) || src.dtype() != dst.dtype())
    fail("dataset '", what, "' is ", src.describe(), " but the network expects rows of ",
         dst.shape().sample(), " as ", dtype_name(dst.dtype()));
  const size_t row = size_t(src.shape().sample().numel()) * dtype_size(src.dtype());
  const auto* from = static_cast<const char*>(src.raw());
  auto* to = static_cast<char*>(dst.raw());
  if (dst.device() == Device::CPU) {
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(to + size_t(i) * row, from + size_t(indices[i]) * row, row);
    return;
  }
  // Gathered on the host, then one copy per batch: a copy per row would cost a round trip each.
  thread_local std::vector<char> staging;
  staging.resize(size_t(n) * row);
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(staging.data() + size_t(i) * row, from + size_t(indices[i]) * row, row);
  copy_bytes(to, dst.device(), staging.data(), Device::CPU, staging.size());
}

class ProgressBar {
 public:
  ProgressBar(std::ostream* out, int64_t steps) : out_(out), steps_(steps) {}
  // `loss` is asked for only when the bar redraws (at most every 200 ms): on the GPU it costs
  // a read back.
  void update(int64_t step, const std::function<double()>& loss) {
    if (!out_) return;
    const auto now = std::chrono::steady_clock::now();
    if (step != steps_ && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    constexpr int kWidth = 30;
    const int filled = int(kWidth * step / std::max<int64_t>(steps_, 1));
    std::string bar(size_t(filled), '=');
    if (filled < kWidth) bar += '>' + std::string(size_t(kWidth - filled - 1), '.');
    *out_ << "\r" << step << "/" << steps_ << " [" << bar << "] - loss: " << loss() << std::flush;
  }
  void finish() {
    if (out_) *out_ << "\r\033[K" << std::flush;
  }

 private:
  std::ostream* out_;
  int64_t steps_;
  std::chrono::steady_clock::time_point last_{};
};

// `v` printed with `format`, "n/a" for NaN (no step, or a task with a zero gradient).
std::string short_number(double v, const char* format) {
  if (std::isnan(v)) return "n/a";
  char text[32];
  std::snprintf(text, sizeof text, format, v);
  return text;
}

// Data-parallel: the epoch's sums (losses, examples, metric sums and counts) over the ranks, so
// every rank reports what one process would. In place; a no-op for one process.
void sum_over_ranks(const Network& network, std::vector<TaskTotals>& totals, const char* what) {
  if (!network.data_parallel()) return;
  std::vector<double> packed;
  for (const auto& t : totals) {
    packed.push_back(t.loss_sum);
    packed.push_back(double(t.examples));  // exact below 2^53 rows
    packed.insert(packed.end(), t.metric_sums.begin(), t.metric_sums.end());
    packed.insert(packed.end(), t.metric_counts.begin(), t.metric_counts.end());
  }
  network.communicator()->allreduce_sum(packed.data(), packed.size(), what);
  size_t k = 0;
  for (auto& t : totals) {
    t.loss_sum = packed[k++];
    t.examples = int64_t(packed[k++]);
    for (auto& m : t.metric_sums) m = packed[k++];
    for (auto& m : t.metric_counts) m = packed[k++];
  }
}

// Every rank must train on the same data with the same settings: one process's view of the
// run, checked once at the start (a rank that read other files would silently train another
// model otherwise).
void check_same_on_every_rank(const Network& network, int64_t rows, int64_t batch_size) {
  Communicator& comm = *network.communicator();
  std::vector<double> mine = {double(rows), double(batch_size),
                              double(network.parameters().trainable_count)};
  std::vector<double> root = mine;
  comm.broadcast(root.data(), root.size() * sizeof(double), 0, "rank 0's data size");
  const char* names[] = {"data rows", "batch size", "trainable parameters"};
  for (size_t i = 0; i < mine.size(); ++i)
    if (mine[i] != root[i])
      fail("rank ", comm.rank(), " has ", int64_t(mine[i]), " ", names[i], " but rank 0 has ",
           int64_t(root[i]), ": every rank must read the same data and model");
}

}  // namespace

std::string format_balance(const BalanceDiagnostics& d, const FanOut& fan_out) {
  const size_t tasks = fan_out.task_count();
  std::string out = "  weights:";
  for (size_t t = 0; t < tasks; ++t)
    out += " " + fan_out.task_name(t) + " " + short_number(d.weights[t], "%.3f");
  out += " | grad norm:";
  for (size_t t = 0; t < tasks; ++t)
    out += " " + fan_out.task_name(t) + " " +
           short_number(d.grad_norm[t], "%.3g");  // norms span decades
  if (tasks > 1) out += " |";
  for (size_t i = 0; i < tasks; ++i)
    for (size_t j = i + 1; j < tasks; ++j)
      out += " cos(" + fan_out.task_name(i) + "," + fan_out.task_name(j) + ") " +
             short_number(d.cos(i, j), "%.2f") + " (" +
             short_number(100 * d.conflict_rate(i, j), "%.0f") + "% of steps < 0)";
  return out;
}

Trainer::Trainer(Network& network, Optimizer& optimizer)
    : network_(network), optimizer_(optimizer) {}

void Trainer::load(const Dataset& data, const int64_t* indices, int64_t n, bool with_targets) {
  const auto& g = network_.model().graph();
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const std::string& name = g.values[g.inputs[i]].name;
    gather_rows(data.input(name), indices, n, network_.input_buffer(i), name);
  }
  if (!with_targets) return;
  for (size_t t = 0; t < network_.tasks().size(); ++t) {
    const std::string& name = network_.tasks()[t].name;
    gather_rows(data.target(name), indices, n, network_.target_buffer(t), name);
  }
}

double Trainer::train_step(const Dataset& data, const int64_t* indices, int64_t n,
                           std::vector<TaskTotals>* totals) {
  load(data, indices, n, true);
  network_.forward(n, /*training=*/true);
  for (size_t t = 0; t < network_.tasks().size(); ++t)
    if (!std::isfinite(network_.task_loss(t)))
      fail("the loss of task '", network_.tasks()[t].name, "' became ", network_.task_loss(t),
           " at step ", network_.step() + 1, "; lower the learning rate or check the data");
  network_.backward();
  optimizer_.step(network_.parameters());
  if (totals) network_.accumulate(*totals);
  return network_.total_loss();
}

namespace {

// Upload of row numbers [begin, end) in `order` (host) as the int32 device array the gathers
// read.
Tensor device_indices(const int64_t* order, int64_t count) {
  std::vector<int32_t> rows(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) rows[size_t(i)] = int32_t(order[i]);
  return Tensor::from_vector<int32_t>({count}, rows).to(Device::CUDA);
}

// While it lives, the network reports bad labels and non-finite losses from its device sums
// instead of reading them back at every step. Restores the previous setting: an evaluate()
// inside fit()'s epoch callback must not switch off what fit() relies on.
class DeferredChecks {
 public:
  explicit DeferredChecks(Network& network)
      : network_(network), previous_(network.deferred_checks()) {
    network_.set_deferred_checks(true);
  }
  ~DeferredChecks() { network_.set_deferred_checks(previous_); }
  DeferredChecks(const DeferredChecks&) = delete;
  DeferredChecks& operator=(const DeferredChecks&) = delete;

 private:
  Network& network_;
  bool previous_;
};

}  // namespace

void Trainer::train_step_on_device(const DeviceDataset& data, const int32_t* indices, int64_t n,
                                   std::vector<TaskTotals>& totals) {
  data.gather(indices, n, network_, true);
  network_.forward(n, /*training=*/true);
  network_.backward();
  optimizer_.step(network_.parameters());
  network_.accumulate_on_device(totals);
}

// Per batch size: a warm-up run, then a captured graph replayed from then on. The warm-up runs
// the work as is because its first run allocates what it keeps (optimiser state, loss
// scratch), which a capture must not.
class GraphsBySize {
 public:
  // Runs `work` (warm-up, or capture and launch: both do the host's part of the work) and
  // returns true, or launches the captured graph and returns false: the caller then does the
  // host's part by hand.
  bool run_or_replay(int64_t n, const char* what, const std::function<void()>& work) {
    if (warmed_.insert(n).second) {
      work();
      ++eager_;
      return true;
    }
    auto& graph = graphs_[n];
    if (!graph) {
      graph = std::make_unique<CudaGraph>(what, work);
      graph->launch();
      return true;
    }
    graph->launch();
    return false;
  }
  // Runs of `work` that were not launched from a graph (warm-ups).
  int64_t eager_runs() const { return eager_; }

 private:
  std::set<int64_t> warmed_;
  std::map<int64_t, std::unique_ptr<CudaGraph>> graphs_;
  int64_t eager_ = 0;
};

// Whether GPU steps replay CUDA graphs: when asked for, when the network allows them, and never
// with the POLYTASK_CUDA_SYNC switch on, whose point is to synchronise and check every launch
// on its own (a GPU refuses to synchronise a stream that is being captured).
namespace {
bool use_cuda_graphs(bool asked, const Network& network) {
  return asked && network.graph_capturable() && !cuda_sync_after_launch();
}
}  // namespace

// The graphs of one fit() or evaluate(): a fixed batch-index buffer they gather from, and the
// training and evaluation graphs by batch size. Staged scalars are on while it lives.
struct Trainer::StepGraphs {
  explicit StepGraphs(Network& network) : network_(network), previous_(network.staged_scalars()) {
    network_.set_staged_scalars(true);
    indices = Tensor::empty({network.options().max_batch}, DType::I32, Device::CUDA);
  }
  ~StepGraphs() { network_.set_staged_scalars(previous_); }
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  Network& network_;
  bool previous_;
  Tensor indices;
  GraphsBySize training, evaluation;
};

bool Trainer::train_step_graphed(StepGraphs& graphs, const DeviceDataset& data,
                                 const int32_t* indices, int64_t n, int64_t global_n,
                                 std::vector<TaskTotals>& totals) {
  // What changes from step to step goes to device memory the graph reads, without waiting and
  // outside the capture: the batch's row numbers (device to device), the step number and seeds
  // and the optimiser's constants (from the pinned staging ring, engine/host_staging.h).
  copy_bytes(graphs.indices.raw(), Device::CUDA, indices, Device::CUDA, size_t(n) * sizeof(int32_t));
  network_.stage_step();
  optimizer_.stage(network_.parameters());
  const auto step = [&] {
    data.gather(graphs.indices.data<int32_t>(), n, network_, true);
    network_.forward(n, /*training=*/true);
    network_.backward();
    optimizer_.step_staged(network_.parameters());
    network_.accumulate_on_device(totals);
  };
  const int64_t eager_before = graphs.training.eager_runs();
  // One graph per (rows here, rows in the global batch): a data-parallel rank's seeds are
  // scaled by their ratio, frozen into the graph. In one process they are the same.
  const int64_t key = n + (global_n << 32);
  if (!graphs.training.run_or_replay(key, "the training step", step))
    network_.replayed_step(n, totals);
  return graphs.training.eager_runs() == eager_before;
}

std::vector<TaskTotals> Trainer::evaluate_on_device(const DeviceDataset& data,
                                                    const int32_t* indices, int64_t count,
                                                    int64_t batch_size, StepGraphs* graphs) {
  auto totals = network_.make_totals();
  for (int64_t begin = 0; begin < count; begin += batch_size) {
    const int64_t n = std::min(batch_size, count - begin);
    const int32_t* rows = indices + begin;
    if (graphs) {
      copy_bytes(graphs->indices.raw(), Device::CUDA, rows, Device::CUDA,
                 size_t(n) * sizeof(int32_t));
      network_.stage_step();
      rows = graphs->indices.data<int32_t>();
    }
    const auto batch = [&] {
      data.gather(rows, n, network_, true);
      network_.forward(n, /*training=*/false);
      network_.accumulate_on_device(totals);
    };
    if (!graphs) {
      batch();
    } else if (!graphs->evaluation.run_or_replay(n, "an evaluation batch", batch)) {
      network_.replayed_evaluation(n, totals);
    }
  }
  network_.take_device_totals(totals);
  return totals;
}

std::vector<TaskTotals> Trainer::evaluate(const Dataset& data, int64_t batch_size) {
  data.validate();
  if (!network_.data_parallel()) return evaluate_rows(data, batch_size);
  // Each rank evaluates its share of the rows; the sums make every rank's totals the whole's.
  const Shard mine = my_shard(data.size());
  auto totals = network_.make_totals();
  if (mine.count > 0)
    totals = evaluate_rows(data.rows(mine.begin, mine.begin + mine.count), batch_size);
  sum_over_ranks(network_, totals, "the evaluation's sums");
  return totals;
}

Shard Trainer::my_shard(int64_t rows) const {
  const Communicator* comm = network_.communicator();
  if (!network_.data_parallel()) return {0, rows};
  return shard_of(rows, comm->rank(), comm->size());
}

std::vector<TaskTotals> Trainer::evaluate_rows(const Dataset& data, int64_t batch_size) {
  const int64_t size = data.size();
  batch_size = std::min(batch_size, network_.options().max_batch);
  if (network_.options().device == Device::CUDA) {
    const DeviceDataset on_device(data, network_);
    const DeferredChecks deferred(network_);
    std::vector<int64_t> order(static_cast<size_t>(size));
    std::iota(order.begin(), order.end(), 0);
    const Tensor indices = device_indices(order.data(), size);
    std::unique_ptr<StepGraphs> graphs;
    if (use_cuda_graphs(true, network_)) graphs = std::make_unique<StepGraphs>(network_);
    return evaluate_on_device(on_device, indices.data<int32_t>(), size, batch_size, graphs.get());
  }
  auto totals = network_.make_totals();
  std::vector<int64_t> order(static_cast<size_t>(size));
  std::iota(order.begin(), order.end(), 0);
  for (int64_t begin = 0; begin < size; begin += batch_size) {
    const int64_t n = std::min(batch_size, size - begin);
    load(data, order.data() + begin, n, true);
    network_.forward(n, /*training=*/false);
    network_.accumulate(totals);
  }
  return totals;
}

void Trainer::run_step_callbacks(const Callbacks& callbacks, EpochLog& log,
                                 TrainingContext& context) {
  const int64_t step = int64_t(network_.step());
  bool read = false;
  Logs running;
  for (const auto& cb : callbacks) {
    const int64_t every = cb->steps_interval();
    if (every <= 0 || step % every != 0) continue;
    if (!read) {  // once for all the callbacks due at this step; on the GPU a read back
      if (network_.options().device == Device::CUDA) network_.take_device_totals(log.train);
      std::vector<TaskTotals> so_far = log.train;  // every rank's, data-parallel
      sum_over_ranks(network_, so_far, "the running sums for the step callbacks");
      for (const auto& [key, value] : totals_logs(so_far, network_, "")) running[key] = value;
      running["learning_rate"] = log.learning_rate;
      read = true;
    }
    cb->on_steps(step, running, context);
  }
}

double Trainer::weighted_loss(const std::vector<TaskTotals>& totals) const {
  double total = 0;
  for (size_t t = 0; t < totals.size(); ++t)
    total += network_.fan_out().loss_weight(t) * totals[t].loss();
  return total;
}

std::string Trainer::format_metrics(const std::vector<TaskTotals>& totals,
                                    const std::string& prefix) const {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(4);
  out << prefix << "loss: " << weighted_loss(totals);
  for (size_t t = 0; t < totals.size(); ++t)
    out << " - " << prefix << network_.tasks()[t].name << "_loss: " << totals[t].loss();
  for (size_t t = 0; t < totals.size(); ++t) {
    const auto metrics = network_.tasks()[t].effective_metrics();
    for (size_t m = 0; m < metrics.size(); ++m)
      out << " - " << prefix << network_.tasks()[t].name << "_" << metric_name(metrics[m]) << ": "
          << totals[t].metric(m);
  }
  return out.str();
}

std::vector<EpochLog> Trainer::fit(const Dataset& data, const FitOptions& options,
                                   const std::function<void(const EpochLog&)>& on_epoch) {
  data.validate();
  if (options.epochs < 0) fail("epochs must be non-negative, got ", options.epochs);
  if (options.batch_size <= 0) fail("batch size must be positive, got ", options.batch_size);
  if (options.batch_size > network_.options().max_batch)
    fail("batch size ", options.batch_size, " exceeds the network's capacity of ",
         network_.options().max_batch);
  if (!(options.validation_split >= 0 && options.validation_split < 1))
    fail("validation split must be in [0, 1), got ", options.validation_split);
  const int64_t total = data.size();
  const int64_t val_rows = int64_t(double(total) * options.validation_split);
  const int64_t train_rows = total - val_rows;
  if (train_rows <= 0) fail("no training rows left after the validation split");
  const Dataset validation = data.rows(train_rows, total);

  if (options.initial_epoch < 0 || options.initial_epoch > options.epochs)
    fail("initial epoch ", options.initial_epoch, " is outside [0, ", options.epochs, "]");
  std::vector<int64_t> order(static_cast<size_t>(train_rows));
  const int64_t steps = (train_rows + options.batch_size - 1) / options.batch_size;
  // Data-parallel: every rank holds the whole data and takes its shard of each global batch
  // (--batch-size is the global batch); rank 0's parameters are everyone's at the start.
  const bool parallel = network_.data_parallel();
  const int ranks = parallel ? network_.communicator()->size() : 1;
  if (parallel) {
    check_same_on_every_rank(network_, total, options.batch_size);
    const int64_t last = train_rows - (steps - 1) * options.batch_size;
    if (std::min(options.batch_size, last) < ranks)
      fail("data-parallel training over ", ranks,
           " ranks needs at least one row per rank in every "
           "batch, but ",
           last < options.batch_size ? "the last batch of an epoch has " : "a batch has ",
           std::min(options.batch_size, last), " (", train_rows, " training rows, batch size ",
           options.batch_size, "); change the batch size or the validation split");
    network_.broadcast_parameters();
  }
  std::vector<EpochLog> logs;
  // On the GPU the data is uploaded once and each step gathers its batch on the device; the
  // epoch's sums stay there until the epoch ends (or the progress bar redraws).
  const bool on_gpu = network_.options().device == Device::CUDA;
  std::unique_ptr<DeviceDataset> device_data;
  std::unique_ptr<DeferredChecks> deferred;
  std::unique_ptr<StepGraphs> graphs;
  Tensor validation_indices;
  if (on_gpu) {
    device_data = std::make_unique<DeviceDataset>(data, network_);
    deferred = std::make_unique<DeferredChecks>(network_);
    if (use_cuda_graphs(options.cuda_graphs, network_))
      graphs = std::make_unique<StepGraphs>(network_);
    std::vector<int64_t> rows(static_cast<size_t>(val_rows));
    std::iota(rows.begin(), rows.end(), train_rows);
    if (val_rows > 0) validation_indices = device_indices(rows.data(), val_rows);
  }
  TrainingContext context{network_, optimizer_};
  context.epochs = options.epochs;
  context.initial_epoch = options.initial_epoch;
  context.steps_per_epoch = steps;
  context.has_validation = val_rows > 0;
  context.log = options.log;
  for (const auto& cb : options.callbacks) cb->on_train_begin(context);
  for (int epoch = options.initial_epoch + 1; epoch <= options.epochs && !context.stop_training;
       ++epoch) {
    for (const auto& cb : options.callbacks) cb->on_epoch_begin(epoch, context);
    const auto start = std::chrono::steady_clock::now();
    const double collectives_before =
        parallel ? network_.communicator()->seconds_in_collectives() : 0.0;
    std::iota(order.begin(), order.end(), 0);
    if (options.shuffle) {
      std::seed_seq seq{uint32_t(options.seed), uint32_t(options.seed >> 32), uint32_t(epoch)};
      std::mt19937_64 shuffle_rng(seq);
      std::shuffle(order.begin(), order.end(), shuffle_rng);
    }
    EpochLog log;
    log.epoch = epoch;
    log.train = network_.make_totals();
    log.learning_rate = optimizer_.learning_rate();
    ProgressBar bar(options.progress ? options.log : nullptr, steps);
    // Built once per epoch: the bar takes a std::function, which must not allocate per step.
    const std::function<double()> running_loss = [&] {
      if (on_gpu) network_.take_device_totals(log.train);
      return weighted_loss(log.train);
    };
    const Tensor epoch_order = on_gpu ? device_indices(order.data(), train_rows) : Tensor();
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t global_n = std::min(options.batch_size, train_rows - s * options.batch_size);
      // This rank's rows of the global batch (all of them in one process).
      const Shard shard = my_shard(global_n);
      const int64_t begin = s * options.batch_size + shard.begin;
      const int64_t n = shard.count;
      if (parallel) network_.set_shard(shard.begin, n, global_n);
      if (graphs)
        log.graphed_steps += train_step_graphed(
            *graphs, *device_data, epoch_order.data<int32_t>() + begin, n, global_n, log.train);
      else if (on_gpu)
        train_step_on_device(*device_data, epoch_order.data<int32_t>() + begin, n, log.train);
      else
        train_step(data, order.data() + begin, n, &log.train);
      bar.update(s + 1, running_loss);
      run_step_callbacks(options.callbacks, log, context);
    }
    bar.finish();
    if (on_gpu) network_.take_device_totals(log.train);
    sum_over_ranks(network_, log.train, "the epoch's training sums");
    log.train_loss = weighted_loss(log.train);
    // Per-rank BatchNorm statistics leave each rank its own running averages: their mean is
    // the model every rank evaluates and saves.
    if (parallel && !network_.sync_batchnorm()) network_.average_state();
    if (val_rows > 0) {
      if (on_gpu) {  // the data is on the device already: this rank's rows of it
        const Shard mine = my_shard(val_rows);
        log.validation =
            mine.count > 0
                ? evaluate_on_device(*device_data, validation_indices.data<int32_t>() + mine.begin,
                                     mine.count, options.batch_size, graphs.get())
                : network_.make_totals();
        sum_over_ranks(network_, log.validation, "the validation's sums");
      } else {
        log.validation = evaluate(validation, options.batch_size);
      }
      log.validation_loss = weighted_loss(log.validation);
    }
    log.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (parallel)
      log.communication_seconds =
          network_.communicator()->seconds_in_collectives() - collectives_before;
    log.balance = network_.fan_out().take_diagnostics();
    log.soft_sharing_penalty = network_.soft_sharing_penalty();  // one read back an epoch
    if (options.log) {
      std::ostringstream line;
      line.setf(std::ios::fixed);
      line.precision(1);
      line << "Epoch " << epoch << "/" << options.epochs << " - " << log.seconds << "s";
      if (parallel) line << " (" << log.communication_seconds << "s in collectives)";
      line << " - " << format_metrics(log.train, "");
      if (val_rows > 0) line << " - " << format_metrics(log.validation, "val_");
      if (log.soft_sharing_penalty > 0)
        line << " - soft_sharing_penalty: " << std::setprecision(4) << log.soft_sharing_penalty;
      *options.log << line.str() << "\n"
                   << format_balance(log.balance, network_.fan_out()) << std::endl;
    }
    EpochSummary summary;
    summary.epoch = epoch;
    for (const auto& t : log.train) summary.train_loss.push_back(t.loss());
    for (const auto& t : log.validation) summary.validation_loss.push_back(t.loss());
    network_.fan_out().end_epoch(summary);
    logs.push_back(log);
    const Logs keyed = epoch_logs(log, network_);
    for (const auto& cb : options.callbacks) cb->on_epoch_end(log, keyed, context);
    if (on_epoch) on_epoch(log);
  }
  for (const auto& cb : options.callbacks) cb->on_train_end(context);
  return logs;
}

}  // namespace polytask
