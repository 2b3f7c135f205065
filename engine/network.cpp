#include "engine/network.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "engine/dispatch.h"
#include "engine/host_staging.h"
#include "engine/task_loss.h"
#include "kernels/elementwise.h"
#include "kernels/soft_sharing.h"

namespace polytask {

namespace {

constexpr int kTrunk = -1;

// One layer call with its buffers, full capacity and the current batch's views.
struct CallPlan {
  int node = -1;
  Layer* layer = nullptr;
  std::vector<int> inputs;  // value ids
  int output = -1;
  int head = kTrunk;     // task index for head calls
  bool backward = false;  // on a path to a task output
  Tensor y_full, dy_full;
  std::vector<Tensor> x_full, aux_full, dx_full;
  std::vector<AuxSpec> aux_spec;
  std::vector<GradMode> dx_mode;
  // Gradients at the fan-out cut live in flat buffers, one segment per cut value
  // (Plan::grad_view): the cut index of each dx and of dy, -1 for an ordinary buffer.
  std::vector<int> dx_cut;
  int dy_cut = -1;
  GradMode param_mode = GradMode::Overwrite;
  int64_t forward_calls = 0;
  // Fusion of a ReLU into the call before it: the producer writes relu(its output) straight
  // into the ReLU's buffer (fuse_relu), and the ReLU call's forward is skipped (fused_away).
  bool fuse_relu = false;
  bool fused_away = false;
  // The same for backward, the other way round: a layer after a ReLU (a max-pool) writes the
  // gradient of the ReLU's input (relu_backward), and the ReLU's backward is skipped.
  bool relu_backward = false;
  bool backward_fused_away = false;
  // Batch views, rebuilt each step into these pre-sized vectors (no allocation).
  std::vector<Tensor> x, aux, dx;
};

struct TaskPlan {
  std::unique_ptr<TaskLoss> loss;
  int output = -1;  // value id
  Tensor target_full, dpred_full, loss_value;
  std::vector<Tensor> aux_full, aux;
  std::vector<AuxSpec> aux_spec;
  GradMode dpred_mode = GradMode::Overwrite;
  int dpred_cut = -1;
  std::vector<int> head_calls;  // indices into calls, in forward order
  // Cut values this task's head never writes a gradient into: their segments of the task's
  // gradient are zeroed each step (the balancer reads the whole concatenation).
  std::vector<int> unwritten_cuts;
};

// A plan buffer; an allocation failure (out of device memory) names the buffer.
Tensor plan_buffer(const Shape& shape, DType dtype, Device device, const std::string& what) {
  try {
    return Tensor::empty(shape, dtype, device);
  } catch (const Error& e) {
    fail(what, " ", shape, " ", dtype_name(dtype), " on ", device_name(device), ": ", e.what());
  }
}

Tensor batch_view(const Tensor& full, int64_t n, bool batched = true) {
  return full.defined() && batched ? full.slice(0, n) : full;
}

}  // namespace

struct Network::Plan {
  Model model;
  NetworkOptions options;
  std::vector<Task> tasks;
  std::vector<TaskPlan> task_plans;
  std::vector<CallPlan> calls;  // forward order
  std::vector<Tensor> values, grads;  // per value id
  std::vector<Tensor> inputs_full;
  // The fan-out cut: the values where the heads meet the trunk, whose per-task gradients the
  // balancer combines. Usually one value z (hard sharing); several where the tasks share
  // layers in more than one place (cross-stitch units, MMoE experts) — then the per-task
  // gradient is the concatenation of the gradients at every cut value.
  std::vector<int> cut;              // value ids
  std::vector<int> cut_index;        // per value id: its index in cut, or -1
  std::vector<int64_t> cut_offset;   // per cut value: per-sample offset in the concatenation
  Tensor dz_full;                    // dz at the cut (undefined when the cut is a model input)
  std::unique_ptr<FanOut> fan_out;
  ParameterSet params;
  // Soft sharing: per tied parameter (e.g. conv1@a.weight, conv1@b.weight), its copies.
  struct TiedParameter {
    std::vector<Parameter*> copies;
  };
  std::vector<TiedParameter> tied;
  Tensor workspace;
  int64_t batch = 0;
  bool trained_forward = false;
  uint64_t step = 0;
  std::vector<double> task_losses;  // the last backward's, for the balancer (sized once)
  // Data-parallel training (Network::set_communicator): null, or the job's ranks; this rank's
  // shard of the step's global batch; on the GPU, the global losses the balancer's kernels read
  // and the seeds scaled by this rank's share (T floats each).
  Communicator* comm = nullptr;
  bool sync_batchnorm = false;
  int64_t shard_first = 0, shard_rows = 0, global_rows = 0;
  Tensor global_losses, shared_seeds;
  bool data_parallel() const { return comm && !comm->single_process(); }
  // This rank's rows over the global batch's: the weight of its mean loss in the global mean.
  double share() const {
    return data_parallel() && global_rows > 0 ? double(shard_rows) / double(global_rows) : 1.0;
  }
  // Staged scalars (CUDA graphs), contiguous so that a step uploads them with one copy: the
  // step number (u64, words 0-1), then one f32 loss seed per task (words 2...).
  bool staged = false;
  bool deferred_checks = false;
  Tensor staged_scalars;                    // (2 + tasks) 32-bit words on the device
  std::vector<unsigned char> staged_bytes;  // their host side, sized once
  static constexpr size_t kSeedsOffset = sizeof(uint64_t);
  const uint64_t* device_step() const {
    return staged ? reinterpret_cast<const uint64_t*>(staged_scalars.raw()) : nullptr;
  }
  const float* device_seed(size_t task) const {
    if (!staged) return nullptr;
    return reinterpret_cast<const float*>(static_cast<const unsigned char*>(staged_scalars.raw()) +
                                          kSeedsOffset) + task;
  }

  Plan(const Model& m, std::vector<Task> t, NetworkOptions o)
      : model(m), options(std::move(o)), tasks(std::move(t)) {}

  const Graph& graph() const { return model.graph(); }

  void build();
  std::set<int> ancestors_of(int value) const;
  int find_fan_out(const std::vector<int>& outputs) const;
  std::vector<std::set<int>> tasks_of_values(const std::vector<int>& task_outputs) const;
  void choose_cut(const std::vector<int>& task_outputs);
  void classify(const std::vector<int>& task_outputs);
  bool in_cut(int value) const { return cut_index[size_t(value)] >= 0; }
  std::string cut_name() const;
  Tensor grad_view(const Tensor& full, int cut_value, int64_t n) const;
  void allocate();
  void assign_grad_modes();
  void bind_parameters();
  void fuse_activations();
  void tie_parameters();
  void add_soft_sharing_gradient();
  // Data-parallel pieces of backward (GPU: queued on the stream, capturable with NCCL).
  void share_device_losses(double share);
  const float* share_device_seed(size_t task, const float* seed, double share);
  void sum_gradients();
};

std::set<int> Network::Plan::ancestors_of(int value) const {
  // Value ids and node ids are topological, so one backward sweep collects the ancestors.
  std::set<int> seen{value};
  for (int v = value; v >= 0; --v) {
    if (!seen.count(v)) continue;
    const int producer = graph().values[v].producer;
    if (producer >= 0)
      for (int in : graph().nodes[producer].inputs) seen.insert(in);
  }
  return seen;
}

int Network::Plan::find_fan_out(const std::vector<int>& outputs) const {
  const auto& g = graph();
  // Does every path from the inputs to every task output pass through `candidate`?
  const auto dominates = [&](int candidate) {
    std::vector<char> reached(g.values.size(), 0);
    for (int in : g.inputs) reached[in] = in != candidate;
    for (const auto& node : g.nodes) {
      if (node.output == candidate) continue;
      for (int in : node.inputs) reached[node.output] |= reached[in];
    }
    return std::none_of(outputs.begin(), outputs.end(), [&](int o) { return reached[o]; });
  };
  if (!options.fan_out.empty()) {
    for (int v = 0; v < int(g.values.size()); ++v)
      if (g.values[v].name == options.fan_out) {
        if (!dominates(v))
          fail("fan-out '", options.fan_out, "' is not a shared representation: some task "
               "output can be reached from the inputs without passing through it");
        return v;
      }
    fail("fan-out '", options.fan_out, "': the model has no layer call of that name");
  }
  for (int v = int(g.values.size()) - 1; v >= 0; --v)
    if (dominates(v)) return v;
  fail("the task outputs share no single representation; multi-task training needs one value "
       "(the fan-out point) that every task output is computed from");
}

std::vector<std::set<int>> Network::Plan::tasks_of_values(
    const std::vector<int>& task_outputs) const {
  std::vector<std::set<int>> tasks_of(graph().values.size());
  for (size_t t = 0; t < task_outputs.size(); ++t)
    for (int v : ancestors_of(task_outputs[t])) tasks_of[size_t(v)].insert(int(t));
  return tasks_of;
}

// Hard sharing — the tasks share nothing below one value z — keeps the cut {z}. A model whose
// tasks also share layers below every such value (cross-stitch units mix the task trunks, MMoE
// gates read the input beside the shared experts) is cut where the shared part meets the
// task-specific part: every value two or more tasks depend on that a task-specific layer reads
// (model inputs aside, which have no gradient to balance).
void Network::Plan::choose_cut(const std::vector<int>& task_outputs) {
  const auto& g = graph();
  const int z = find_fan_out(task_outputs);
  const auto tasks_of = tasks_of_values(task_outputs);
  const auto z_ancestors = ancestors_of(z);
  const auto shared = [&](int v) { return tasks_of[size_t(v)].size() >= 2; };
  bool shared_below_z = false;
  for (int v = 0; v < int(g.values.size()); ++v)
    shared_below_z |= shared(v) && !z_ancestors.count(v);
  cut.clear();
  if (!options.fan_out.empty() || !shared_below_z) {
    cut.push_back(z);  // a user's fan-out that heads share layers below fails in classify
  } else {
    std::set<int> chosen;
    for (const auto& node : g.nodes)
      if (!tasks_of[size_t(node.output)].empty() && !shared(node.output))
        for (int in : node.inputs)
          if (shared(in) && g.values[size_t(in)].producer >= 0) chosen.insert(in);
    for (int o : task_outputs)
      if (shared(o)) chosen.insert(o);
    cut.assign(chosen.begin(), chosen.end());
  }
  cut_index.assign(g.values.size(), -1);
  cut_offset.clear();
  int64_t offset = 0;
  for (size_t k = 0; k < cut.size(); ++k) {
    cut_index[size_t(cut[k])] = int(k);
    cut_offset.push_back(offset);
    offset += g.values[size_t(cut[k])].shape.numel();
  }
}

std::string Network::Plan::cut_name() const {
  std::string name;
  for (int v : cut) name += (name.empty() ? "" : " + ") + graph().values[size_t(v)].name;
  return name;
}

// The batch's view of a gradient buffer: rows [0, n) of an ordinary one; for a cut value k,
// its segment of the flat concatenation [value 0: n·|z_0|][value 1: n·|z_1|]... — whose first
// n·Σ|z_k| elements are exactly the fan-out's (n, Σ|z_k|) batch view, so the balancer sees
// every cut value's gradient as one vector. With one cut value this is rows [0, n) as well.
Tensor Network::Plan::grad_view(const Tensor& full, int cut_value, int64_t n) const {
  if (cut_value < 0 || !full.defined()) return batch_view(full, n);
  const Shape& shape = graph().values[size_t(cut[size_t(cut_value)])].shape;
  const int64_t begin = n * cut_offset[size_t(cut_value)];
  return full.view({full.numel()}).slice(begin, begin + n * shape.numel()).view(shape.with_batch(n));
}

void Network::Plan::classify(const std::vector<int>& task_outputs) {
  const auto& g = graph();
  std::set<int> needed;  // values forward must compute
  for (const auto& o : model.outputs()) {
    const auto a = ancestors_of(o.value.id());
    needed.insert(a.begin(), a.end());
  }
  std::set<int> trainable_path;  // values on a path to a task output
  for (int o : task_outputs) {
    const auto a = ancestors_of(o);
    trainable_path.insert(a.begin(), a.end());
  }
  // The trunk: everything the cut is computed from. Head t: the rest of task t's ancestry.
  std::set<int> trunk_values;
  for (int v : cut) {
    const auto a = ancestors_of(v);
    trunk_values.insert(a.begin(), a.end());
  }
  std::vector<std::set<int>> head_values(tasks.size());
  for (size_t t = 0; t < tasks.size(); ++t)
    for (int v : ancestors_of(task_outputs[t]))
      if (!trunk_values.count(v)) head_values[t].insert(v);
  const std::string z_name = cut_name();

  for (int n = 0; n < int(g.nodes.size()); ++n) {
    const auto& node = g.nodes[n];
    if (!needed.count(node.output)) continue;
    CallPlan call;
    call.node = n;
    call.layer = node.layer.get();
    call.inputs = node.inputs;
    call.output = node.output;
    call.backward = trainable_path.count(node.output) > 0;
    for (size_t t = 0; t < tasks.size(); ++t) {
      if (!head_values[t].count(node.output)) continue;
      if (call.head != kTrunk)
        fail("layer call '", g.values[node.output].name, "' is used by tasks '",
             tasks[size_t(call.head)].name, "' and '", tasks[t].name, "' below the shared "
             "representation '", z_name, "'; heads must not share layers below the "
             "fan-out (set the fan-out lower)");
      call.head = int(t);
    }
    if (call.head != kTrunk)
      for (int in : node.inputs) {
        const bool ok = in_cut(in) || head_values[size_t(call.head)].count(in) ||
                        g.values[in].producer < 0;
        if (!ok)
          fail("layer call '", g.values[node.output].name, "' in the head of task '",
               tasks[size_t(call.head)].name, "' reads '", g.values[in].name,
               "', which is neither the shared representation '", z_name,
               "' nor part of that head");
      }
    calls.push_back(std::move(call));
  }
}

void Network::Plan::allocate() {
  const auto& g = graph();
  const int64_t cap = options.max_batch;
  const Device dev = options.device;
  const DType dt = options.dtype;
  values.resize(g.values.size());
  grads.resize(g.values.size());
  for (int in : g.inputs) {
    values[in] = Tensor::zeros(g.values[in].shape.with_batch(cap), dt, dev);
    inputs_full.push_back(values[in]);
  }
  int64_t workspace_elements = 1;
  for (auto& call : calls) {
    const auto& value = g.values[call.output];
    values[call.output] = plan_buffer(value.shape.with_batch(cap), dt, dev, "output of " + value.name);
    if (call.backward && !in_cut(call.output))
      grads[call.output] = plan_buffer(value.shape.with_batch(cap), dt, dev, "gradient of " + value.name);
    std::vector<Shape> in_shapes;
    for (int in : call.inputs) in_shapes.push_back(g.values[in].shape);
    workspace_elements = std::max(workspace_elements, call.layer->workspace_elements(in_shapes, cap));
    call.aux_spec = call.layer->aux(in_shapes, cap);
    for (const auto& spec : call.aux_spec)
      call.aux_full.push_back(plan_buffer(spec.shape, spec.integer ? DType::I32 : dt, dev,
                                          "saved state of " + value.name));
  }
  // dz: one buffer in the fan-out's layout, (cap, *z) for one cut value, else (cap, Σ|z_k|).
  const Shape z_sample = cut.size() == 1 ? g.values[size_t(cut[0])].shape
                                         : Shape{cut_offset.back() + g.values[size_t(cut.back())].shape.numel()};
  if (cut.size() > 1 || g.values[size_t(cut[0])].producer >= 0)
    dz_full = plan_buffer(z_sample.with_batch(cap), dt, dev, "gradient of " + cut_name());
  workspace = plan_buffer({workspace_elements}, dt, dev, "the layers' shared workspace");

  std::vector<std::string> names;
  std::vector<double> weights;
  for (const auto& t : tasks) names.push_back(t.name), weights.push_back(t.weight);
  fan_out = std::make_unique<FanOut>(names, weights, cut_name(), z_sample, cap, dt, dev);

  for (size_t t = 0; t < tasks.size(); ++t) {
    auto& tp = task_plans[t];
    tp.target_full = Tensor::zeros(tp.loss->target_sample_shape().with_batch(cap),
                                   tp.loss->target_dtype(dt), dev);
    tp.loss_value = Tensor::zeros({1}, dt, dev);
    tp.aux_spec = tp.loss->aux(cap);
    for (const auto& spec : tp.aux_spec) tp.aux_full.push_back(Tensor::empty(spec.shape, dt, dev));
    tp.aux.resize(tp.aux_full.size());
    tp.dpred_cut = cut_index[size_t(tp.output)];
    tp.dpred_full = in_cut(tp.output) ? fan_out->task_gradient_buffer(t) : grads[tp.output];
  }
  if (dev == Device::CUDA && dt == DType::F32) {
    std::vector<const float*> losses;
    for (const auto& tp : task_plans) losses.push_back(tp.loss_value.data<float>());
    fan_out->set_device_losses(std::move(losses));
  }

  for (auto& call : calls) {
    for (int in : call.inputs) {
      call.x_full.push_back(values[in]);
      Tensor dx;
      if (call.backward && call.layer->differentiable()) {
        if (!in_cut(in)) dx = grads[in];  // undefined for model inputs
        else if (call.head != kTrunk) dx = fan_out->task_gradient_buffer(size_t(call.head));
        else dx = dz_full;  // a trunk layer reading a cut value adds to what combine wrote
      }
      call.dx_full.push_back(dx);
      call.dx_cut.push_back(dx.defined() ? cut_index[size_t(in)] : -1);
    }
    call.y_full = values[call.output];
    call.dy_cut = cut_index[size_t(call.output)];
    call.dy_full = in_cut(call.output) ? dz_full : grads[call.output];
    call.x.resize(call.x_full.size());
    call.dx.resize(call.dx_full.size());
    call.aux.resize(call.aux_full.size());
    call.dx_mode.assign(call.dx_full.size(), GradMode::Overwrite);
  }
}

// Replays the backward order once to decide, for every gradient buffer and every layer's
// parameters, who writes first (Overwrite) and who adds (Accumulate).
void Network::Plan::assign_grad_modes() {
  // A buffer, or one cut value's segment of a flat buffer.
  using Key = std::pair<const void*, int>;
  std::set<Key> written;
  const auto mode_for = [&](const void* buffer, int cut_value) {
    return written.insert({buffer, cut_value}).second ? GradMode::Overwrite : GradMode::Accumulate;
  };
  const auto backward_call = [&](CallPlan& call) {
    if (call.backward_fused_away) return;
    call.param_mode = mode_for(call.layer, -1);
    for (size_t i = 0; i < call.dx_full.size(); ++i)
      if (call.dx_full[i].defined()) call.dx_mode[i] = mode_for(call.dx_full[i].raw(), call.dx_cut[i]);
  };
  for (size_t t = 0; t < task_plans.size(); ++t) {
    auto& tp = task_plans[t];
    tp.dpred_mode = mode_for(tp.dpred_full.raw(), tp.dpred_cut);
    for (auto it = tp.head_calls.rbegin(); it != tp.head_calls.rend(); ++it) backward_call(calls[*it]);
    if (cut.size() > 1)
      for (int k = 0; k < int(cut.size()); ++k)
        if (!written.count({fan_out->task_gradient_buffer(t).raw(), k})) tp.unwritten_cuts.push_back(k);
  }
  // combine() writes dz first; trunk layers that read a cut value add to it.
  for (int k = 0; k < int(cut.size()); ++k) written.insert({dz_full.defined() ? dz_full.raw() : nullptr, k});
  for (auto it = calls.rbegin(); it != calls.rend(); ++it)
    if (it->backward && it->head == kTrunk) backward_call(*it);
}

void Network::Plan::bind_parameters() {
  for (const auto& layer : graph().layers)
    for (const auto& p : layer->parameters()) {
      // The parameters live in the network's buffers: a second network over the same layers
      // would silently take them over from the first.
      if (p->owner)
        fail("parameter ", p->name, " already belongs to another network; build a fresh model "
             "for each network (or destroy the first network)");
      p->owner = this;
      params.all.push_back(p.get());
      (p->trainable ? params.trainable_count : params.state_count) += p->shape.numel();
    }
  params.values = Tensor::zeros({params.trainable_count}, options.dtype, options.device);
  params.grads = Tensor::zeros({params.trainable_count}, options.dtype, options.device);
  params.state = Tensor::zeros({params.state_count}, options.dtype, options.device);
  int64_t trainable_at = 0, state_at = 0;
  for (Parameter* p : params.all) {
    const int64_t n = p->shape.numel();
    if (p->trainable) {
      p->value = params.values.slice(trainable_at, trainable_at + n).view(p->shape);
      p->grad = params.grads.slice(trainable_at, trainable_at + n).view(p->shape);
      trainable_at += n;
    } else {
      p->value = params.state.slice(state_at, state_at + n).view(p->shape);
      p->grad = Tensor();
      state_at += n;
    }
  }
}

void Network::Plan::build() {
  const auto& g = graph();
  if (tasks.empty()) fail("a network needs at least one task");
  if (options.max_batch <= 0) fail("batch size must be positive, got ", options.max_batch);
  if (options.precision != kernels::MathPrecision::FP32 &&
      (options.device != Device::CUDA || options.dtype != DType::F32))
    fail("precision ", kernels::precision_name(options.precision), " runs on the GPU's tensor "
         "cores: it needs an f32 network on the GPU (--device cuda), not ",
         device_name(options.device));
  if (const std::string problem = tensor_core_problem(options.precision); !problem.empty())
    fail(problem);
  std::set<std::string> task_names;
  std::vector<int> task_outputs;
  for (const auto& t : tasks) {
    if (!task_names.insert(t.name).second) fail("two tasks are named '", t.name, "'");
    const auto& out = model.output(t.output_name());
    const int producer = g.values[out.value.id()].producer;
    const std::string producer_name = producer >= 0 ? g.nodes[producer].layer->name() : "(input)";
    TaskPlan tp;
    tp.loss = std::make_unique<TaskLoss>(t, out.value.shape(), producer_name);
    tp.output = out.value.id();
    task_outputs.push_back(tp.output);
    task_plans.push_back(std::move(tp));
  }
  choose_cut(task_outputs);
  classify(task_outputs);
  for (size_t c = 0; c < calls.size(); ++c)
    if (calls[c].head != kTrunk) task_plans[size_t(calls[c].head)].head_calls.push_back(int(c));
  allocate();
  fuse_activations();
  assign_grad_modes();
  bind_parameters();
  tie_parameters();
}

// Soft sharing's groups name layers; their trainable parameters must correspond one to one
// (same suffixes, same shapes): that is what makes them copies of one layer.
void Network::Plan::tie_parameters() {
  const SoftSharing& soft = options.soft_sharing;
  if (soft.groups.empty()) return;
  if (!std::isfinite(soft.strength) || soft.strength < 0)
    fail("soft sharing strength must be finite and non-negative, got ", soft.strength);
  std::map<std::string, const Layer*> by_name;
  for (const auto& layer : graph().layers) by_name[layer->name()] = layer.get();
  std::set<std::string> grouped;
  for (const auto& group : soft.groups) {
    if (group.size() < 2 || group.size() > size_t(kernels::kMaxSoftSharedCopies))
      fail("a soft-sharing group ties 2 to ", kernels::kMaxSoftSharedCopies, " layers, got ",
           group.size());
    std::vector<const Layer*> layers;
    for (const auto& name : group) {
      const auto it = by_name.find(name);
      if (it == by_name.end()) fail("soft sharing: the model has no layer '", name, "'");
      if (!grouped.insert(name).second) fail("soft sharing: layer '", name, "' is in two groups");
      layers.push_back(it->second);
    }
    const auto trainable = [](const Layer* layer) {
      std::vector<Parameter*> out;
      for (const auto& p : layer->parameters())
        if (p->trainable) out.push_back(p.get());
      return out;
    };
    const auto first = trainable(layers[0]);
    if (first.empty()) fail("soft sharing: layer '", group[0], "' has no trainable parameters");
    std::vector<TiedParameter> group_tied(first.size());
    for (size_t l = 0; l < layers.size(); ++l) {
      const auto params_l = trainable(layers[l]);
      for (size_t i = 0; i < first.size(); ++i) {
        const auto suffix = [](const Parameter* p) { return p->name.substr(p->name.rfind('.')); };
        if (params_l.size() != first.size() || !(params_l[i]->shape == first[i]->shape) ||
            suffix(params_l[i]) != suffix(first[i]))
          fail("soft sharing: layers '", group[0], "' and '", group[l], "' are not copies of one "
               "layer (their parameters differ: ", first[i]->name, " ", first[i]->shape, " vs ",
               i < params_l.size() ? params_l[i]->name : std::string("none"), ")");
        group_tied[i].copies.push_back(params_l[i]);
      }
    }
    tied.insert(tied.end(), group_tied.begin(), group_tied.end());
  }
}

void Network::Plan::add_soft_sharing_gradient() {
  const double strength = options.soft_sharing.strength;
  if (tied.empty() || strength == 0) return;
  constexpr size_t kMax = kernels::kMaxSoftSharedCopies;
  for (const auto& t : tied) {
    const int members = int(t.copies.size());
    const int64_t count = t.copies[0]->shape.numel();
    // The copies' value and gradient pointers, as the kernels take them.
    const auto pointers = [&]<class T>(std::array<const T*, kMax>& v, std::array<T*, kMax>& g) {
      for (size_t i = 0; i < size_t(members); ++i)
        v[i] = t.copies[i]->value.data<T>(), g[i] = t.copies[i]->grad.data<T>();
    };
    dispatch(
        "soft sharing gradient", t.copies[0]->value,
        [&]<class T>() {
          std::array<const T*, kMax> v{};
          std::array<T*, kMax> g{};
          pointers(v, g);
          kernels::cpu::soft_sharing_gradient<T>(count, members, v.data(), g.data(), T(strength));
        },
        [&](auto stream) {
          std::array<const float*, kMax> v{};
          std::array<float*, kMax> g{};
          pointers(v, g);
          kernels::cuda::soft_sharing_gradient(count, members, v.data(), g.data(),
                                               float(strength), stream);
        });
  }
}

// Two fusions around a ReLU, each saving a pass over an activation:
//  - forward: a conv followed by a ReLU that is its output's only reader applies the ReLU in its
//    epilogue and writes the ReLU's output; the ReLU's forward is skipped. (The ReLU's backward
//    needs only its own output and dy; the conv's backward never reads its own output, so the
//    conv's own output buffer simply goes unwritten.)
//  - backward: a ReLU whose output only a max-pool reads: the pool's backward writes the
//    gradient of the ReLU's input, gated by its own output (a window's maximum is the ReLU's
//    output at the chosen input), and the ReLU's backward is skipped, its gradient buffer
//    freed. Runs before assign_grad_modes, which then sees the pool as the writer of the
//    ReLU's input gradient.
void Network::Plan::fuse_activations() {
  const auto& g = graph();
  std::vector<int> readers(g.values.size(), 0);
  for (const auto& call : calls)
    for (int in : call.inputs) ++readers[size_t(in)];
  for (const auto& o : model.outputs()) ++readers[size_t(o.value.id())];  // read by a task/user
  std::vector<int> producer_call(g.values.size(), -1);
  for (size_t c = 0; c < calls.size(); ++c) producer_call[size_t(calls[c].output)] = int(c);
  // The call producing `value` when `reader` is its only reader in the same part of the network.
  const auto sole_producer = [&](const CallPlan& reader, int value) -> CallPlan* {
    const int producer = producer_call[size_t(value)];
    if (producer < 0 || in_cut(value) || readers[size_t(value)] != 1) return nullptr;
    CallPlan& call = calls[size_t(producer)];
    return call.head == reader.head ? &call : nullptr;
  };
  const auto is_relu = [](const CallPlan& call) {
    return call.layer->kind() == "relu" && call.inputs.size() == 1;
  };
  for (auto& relu : calls) {
    if (!is_relu(relu)) continue;
    CallPlan* conv = sole_producer(relu, relu.inputs[0]);
    if (!conv || !conv->layer->can_fuse_relu()) continue;
    conv->fuse_relu = true;
    conv->y_full = relu.y_full;
    relu.fused_away = true;
  }
  for (auto& pool : calls) {
    if (!pool.backward || pool.inputs.size() != 1 || !pool.layer->can_fuse_relu_backward())
      continue;
    CallPlan* relu = sole_producer(pool, pool.inputs[0]);
    if (!relu || !is_relu(*relu) || !relu->backward) continue;
    pool.dx_full[0] = relu->dx_full[0];
    pool.relu_backward = true;
    relu->backward_fused_away = true;
    // Nothing writes or reads the ReLU's output gradient now: free its buffer.
    grads[size_t(pool.inputs[0])] = Tensor();
    relu->dy_full = Tensor();
  }
}

Network::Network(const Model& model, std::vector<Task> tasks, NetworkOptions options)
    : plan_(std::make_unique<Plan>(model, std::move(tasks), std::move(options))) {
  plan_->build();
  initialize(plan_->options.seed);
}

Network::~Network() {
  for (Parameter* p : plan_->params.all)
    if (p->owner == plan_.get()) {
      p->value = Tensor();
      p->grad = Tensor();
      p->owner = nullptr;
    }
}

const Model& Network::model() const { return plan_->model; }
const NetworkOptions& Network::options() const { return plan_->options; }
const std::vector<Task>& Network::tasks() const { return plan_->tasks; }
FanOut& Network::fan_out() { return *plan_->fan_out; }
const FanOut& Network::fan_out() const { return *plan_->fan_out; }
ParameterSet& Network::parameters() { return plan_->params; }
const ParameterSet& Network::parameters() const { return plan_->params; }
uint64_t Network::step() const { return plan_->step; }
void Network::set_step(uint64_t step) { plan_->step = step; }

const Tensor& Network::input_buffer(size_t i) const {
  if (i >= plan_->inputs_full.size()) fail("model input ", i, " does not exist");
  return plan_->inputs_full[i];
}

size_t Network::input_index(const std::string& name) const {
  const auto& g = plan_->graph();
  for (size_t i = 0; i < g.inputs.size(); ++i)
    if (g.values[g.inputs[i]].name == name) return i;
  fail("the model has no input named '", name, "'");
}

const Tensor& Network::target_buffer(size_t t) const {
  if (t >= plan_->task_plans.size()) fail("task ", t, " does not exist");
  return plan_->task_plans[t].target_full;
}

void Network::forward(int64_t n, bool training, bool with_losses) {
  auto& p = *plan_;
  if (n <= 0 || n > p.options.max_batch)
    fail("batch of ", n, " rows does not fit a network compiled for batches of up to ",
         p.options.max_batch);
  if (p.data_parallel() && training && n != p.shard_rows)
    fail("data-parallel training: a training forward of ", n, " rows, but this rank's shard has ",
         p.shard_rows, " (call set_shard first)");
  p.batch = n;
  // Backward is allowed only after a forward that completed with its losses: a forward that
  // throws part-way (a bad label) must not leave the previous batch's state looking valid.
  p.trained_forward = false;
  Communicator* const sync = training && p.sync_batchnorm && p.data_parallel() ? p.comm : nullptr;
  for (size_t c = 0; c < p.calls.size(); ++c) {
    auto& call = p.calls[c];
    for (size_t i = 0; i < call.x.size(); ++i) call.x[i] = batch_view(call.x_full[i], n);
    for (size_t i = 0; i < call.aux.size(); ++i)
      call.aux[i] = batch_view(call.aux_full[i], n, call.aux_spec[i].batched);
    LayerCall lc;
    lc.x = call.x;
    lc.y = batch_view(call.y_full, n);
    lc.aux = call.aux;
    lc.workspace = p.workspace;
    lc.training = training;
    lc.seed = p.options.seed;
    lc.stream = (p.step << kStepShift) + uint64_t(c);
    lc.device_step = p.device_step();
    lc.precision = p.options.precision;
    lc.fuse_relu = call.fuse_relu;
    if (training && p.data_parallel()) lc.first_row = p.shard_first;
    lc.sync_batchnorm = sync;
    lc.global_rows = p.global_rows;
    if (!call.fused_away) call.layer->forward(lc);
    ++call.forward_calls;
  }
  if (!with_losses) return;
  for (auto& tp : p.task_plans) {
    for (size_t i = 0; i < tp.aux.size(); ++i) tp.aux[i] = batch_view(tp.aux_full[i], n);
    tp.loss->forward(batch_view(p.values[tp.output], n), batch_view(tp.target_full, n), tp.aux,
                     tp.loss_value, p.step, p.device_step());
  }
  p.trained_forward = training;
}

void Network::backward() {
  auto& p = *plan_;
  if (!p.trained_forward) fail("backward needs a training forward with losses just before it");
  p.trained_forward = false;
  const int64_t n = p.batch;
  const auto backward_call = [&](CallPlan& call, uint64_t index) {
    if (call.backward_fused_away) return;
    for (size_t i = 0; i < call.dx.size(); ++i) call.dx[i] = p.grad_view(call.dx_full[i], call.dx_cut[i], n);
    LayerCall lc;
    lc.x = call.x;  // still the views of this batch from forward
    lc.y = batch_view(call.y_full, n);
    lc.aux = call.aux;
    lc.workspace = p.workspace;
    lc.training = true;
    lc.seed = p.options.seed;
    lc.stream = (p.step << kStepShift) + index;
    lc.device_step = p.device_step();
    lc.precision = p.options.precision;
    if (p.data_parallel()) lc.first_row = p.shard_first;
    lc.sync_batchnorm = p.sync_batchnorm && p.data_parallel() ? p.comm : nullptr;
    lc.global_rows = p.global_rows;
    lc.dy = p.grad_view(call.dy_full, call.dy_cut, n);
    lc.dx = call.dx;
    lc.dx_mode = call.dx_mode;
    lc.relu_backward = call.relu_backward;
    lc.param_mode = call.param_mode;
    call.layer->backward(lc);
  };
  // The balancer picks each task's seed from the batch's losses (static: the loss weights).
  // On the GPU reading the losses costs a round trip, so only when the balancer needs them.
  // Data-parallel: the balancer sees the global batch's mean losses, Σ over the ranks of each
  // rank's mean weighted by its share of the rows, and each rank seeds its loss with its share
  // of the global seed, so the per-task gradients at z are this rank's rows of the global ones.
  const bool parallel = p.data_parallel();
  const double share = p.share();
  p.task_losses.resize(p.fan_out->needs_step_losses() ? p.task_plans.size() : 0);
  for (size_t t = 0; t < p.task_losses.size(); ++t) p.task_losses[t] = task_loss(t) * share;
  if (parallel && !p.task_losses.empty())
    p.comm->allreduce_sum(p.task_losses.data(), p.task_losses.size(), "the tasks' losses");
  const bool device_balancing = p.fan_out->balances_on_device();
  if (parallel && device_balancing) p.share_device_losses(share);
  p.fan_out->begin_backward(p.step, p.task_losses);
  // A strategy that balances on the device seeds from its kernel's output instead.
  if (device_balancing) p.fan_out->launch_device_seeds(p.step, p.device_step());
  for (size_t t = 0; t < p.task_plans.size(); ++t) {
    auto& tp = p.task_plans[t];
    const float* device_seed = device_balancing ? p.fan_out->device_seed(t) : p.device_seed(t);
    if (parallel && device_balancing) device_seed = p.share_device_seed(t, device_seed, share);
    tp.loss->backward(batch_view(p.values[tp.output], n), batch_view(tp.target_full, n), tp.aux,
                      p.fan_out->loss_seed(t) * share, p.grad_view(tp.dpred_full, tp.dpred_cut, n),
                      tp.dpred_mode, device_seed);
    for (auto it = tp.head_calls.rbegin(); it != tp.head_calls.rend(); ++it)
      backward_call(p.calls[size_t(*it)], uint64_t(*it));
    for (int k : tp.unwritten_cuts) p.grad_view(p.fan_out->task_gradient_buffer(t), k, n).zero();
  }
  p.fan_out->combine(n, batch_view(p.dz_full, n));
  for (size_t c = p.calls.size(); c-- > 0;)
    if (p.calls[c].backward && p.calls[c].head == kTrunk) backward_call(p.calls[c], c);
  // The penalty is the model's, not the data's: one rank adds its gradient to the sum.
  if (!parallel || p.comm->is_root()) p.add_soft_sharing_gradient();
  if (parallel) p.sum_gradients();
  ++p.step;
}

double Network::task_loss(size_t t) const {
  const auto& v = plan_->task_plans.at(t).loss_value;
  return v.device() == Device::CPU ? v.item() : v.to(Device::CPU).item();
}

double Network::soft_sharing_penalty() const {
  const auto& p = *plan_;
  if (p.tied.empty()) return 0;
  double total = 0;
  for (const auto& t : p.tied) {
    std::vector<Tensor> host;
    for (const Parameter* copy : t.copies) host.push_back(copy->value.to(Device::CPU));
    const int members = int(host.size());
    const int64_t count = host[0].numel();
    auto penalty = [&]<class T>() {
      std::array<const T*, kernels::kMaxSoftSharedCopies> values{};
      for (int i = 0; i < members; ++i) values[size_t(i)] = host[size_t(i)].data<T>();
      total += kernels::cpu::soft_sharing_penalty<T>(count, members, values.data(),
                                                     p.options.soft_sharing.strength);
    };
    detail::dispatch_cpu("soft sharing penalty", host[0], penalty);
  }
  return total;
}

double Network::total_loss() const {
  double total = soft_sharing_penalty();
  for (size_t t = 0; t < plan_->task_plans.size(); ++t)
    total += plan_->fan_out->weight(t) * task_loss(t);
  return total;
}

Tensor Network::output(const std::string& name) const {
  return batch_view(plan_->values[plan_->model.output(name).value.id()], plan_->batch);
}

std::vector<TaskTotals> Network::make_totals() const {
  std::vector<TaskTotals> totals(plan_->tasks.size());
  for (size_t t = 0; t < totals.size(); ++t) {
    const size_t m = plan_->tasks[t].effective_metrics().size();
    totals[t].metric_sums.assign(m, 0.0);
    totals[t].metric_counts.assign(m, 0.0);
  }
  return totals;
}

void Network::accumulate(std::vector<TaskTotals>& totals) const {
  const auto& p = *plan_;
  for (size_t t = 0; t < p.task_plans.size(); ++t) {
    const auto& tp = p.task_plans[t];
    totals[t].loss_sum += task_loss(t) * double(p.batch);
    totals[t].examples += p.batch;
    tp.loss->accumulate_metrics(batch_view(p.values[tp.output], p.batch),
                                batch_view(tp.target_full, p.batch), tp.aux,
                                totals[t].metric_sums, totals[t].metric_counts);
  }
}

void Network::accumulate_on_device(std::vector<TaskTotals>& totals) const {
  const auto& p = *plan_;
  for (const auto& tp : p.task_plans)
    tp.loss->accumulate_on_device(batch_view(p.values[tp.output], p.batch),
                                  batch_view(tp.target_full, p.batch), tp.loss_value);
  // The counts are known on the host; only the sums live on the device.
  count_batch(totals);
}

void Network::take_device_totals(std::vector<TaskTotals>& totals) const {
  const auto& p = *plan_;
  for (size_t t = 0; t < p.task_plans.size(); ++t) {
    const std::vector<double> sums = p.task_plans[t].loss->take_device_sums();
    if (!std::isfinite(sums[0]))
      fail("the loss of task '", p.tasks[t].name, "' became ", sums[0], " by step ", p.step,
           "; lower the learning rate or check the data");
    totals[t].loss_sum += sums[0];
    for (size_t m = 0; m + 1 < sums.size(); ++m) totals[t].metric_sums[m] += sums[m + 1];
  }
}

bool Network::graph_capturable() const {
  // A data-parallel step's sums go into the graph only through a communicator that queues them
  // on the stream (NCCL), not one that waits on the host (MPI through host copies).
  if (plan_->data_parallel() && !plan_->comm->device_capturable()) return false;
  return plan_->options.device == Device::CUDA && plan_->options.dtype == DType::F32 &&
         !plan_->fan_out->needs_step_losses() && plan_->fan_out->statistics_on_device();
}

void Network::set_staged_scalars(bool staged) {
  auto& p = *plan_;
  if (staged && !graph_capturable())
    fail("staged scalars (CUDA graphs) need an f32 network on the GPU and a balancer that reads "
         "nothing back each step (every built-in one), not '", p.fan_out->balancer().name(), "'");
  if (staged && !p.staged_scalars.defined()) {
    p.staged_scalars = Tensor::zeros({2 + int64_t(p.tasks.size())}, DType::I32, Device::CUDA);
    p.staged_bytes.resize(size_t(p.staged_scalars.bytes()));
  }
  p.staged = staged;
}

bool Network::staged_scalars() const { return plan_->staged; }

void Network::stage_step() {
  auto& p = *plan_;
  if (!p.staged) fail("stage_step: staged scalars are off");
  // The seeds this step will use (static: the loss weights, which set_weight may change).
  p.fan_out->begin_backward(p.step, {});
  unsigned char* const bytes = p.staged_bytes.data();  // sized once: a step allocates nothing
  const uint64_t step = p.step;
  std::memcpy(bytes, &step, sizeof(step));
  for (size_t t = 0; t < p.tasks.size(); ++t) {
    const float seed = float(p.fan_out->loss_seed(t) * p.share());
    std::memcpy(bytes + Plan::kSeedsOffset + t * sizeof(float), &seed, sizeof(seed));
  }
  host_staging().upload(p.staged_scalars.raw(), bytes, p.staged_bytes.size(),
                        "the network's step number and loss seeds");
}

void Network::replayed_step(int64_t n, std::vector<TaskTotals>& totals) {
  auto& p = *plan_;
  p.batch = n;
  p.fan_out->count_replayed_step(p.step, n);
  count_batch(totals);
  ++p.step;
}

void Network::replayed_evaluation(int64_t n, std::vector<TaskTotals>& totals) {
  plan_->batch = n;
  plan_->trained_forward = false;
  count_batch(totals);
}

void Network::count_batch(std::vector<TaskTotals>& totals) const {
  const auto& p = *plan_;
  for (size_t t = 0; t < p.task_plans.size(); ++t) {
    const auto& tp = p.task_plans[t];
    totals[t].examples += p.batch;
    tp.loss->add_metric_counts(batch_view(p.values[tp.output], p.batch), totals[t].metric_counts);
  }
}

void Network::set_deferred_checks(bool deferred) {
  plan_->deferred_checks = deferred;
  for (auto& tp : plan_->task_plans) tp.loss->set_deferred_checks(deferred);
}

bool Network::deferred_checks() const { return plan_->deferred_checks; }

void Network::initialize(uint64_t seed) {
  auto& p = *plan_;
  std::mt19937_64 rng(seed);
  for (Parameter* param : p.params.all) {
    Tensor host = Tensor::empty(param->shape, DType::F64);
    double* v = host.data<double>();
    const int64_t n = param->shape.numel();
    if (param->init == Init::GlorotUniform) {
      const double limit = std::sqrt(6.0 / double(param->fan_in + param->fan_out));
      std::uniform_real_distribution<double> dist(-limit, limit);
      for (int64_t i = 0; i < n; ++i) v[i] = dist(rng);
    } else if (param->init == Init::Values) {
      if (int64_t(param->values.size()) != n)
        fail("parameter ", param->name, ": ", param->values.size(), " initial values for ", n,
             " elements");
      std::copy(param->values.begin(), param->values.end(), v);
    } else {
      std::fill(v, v + n, param->init == Init::Ones ? 1.0 : 0.0);
    }
    if (p.options.dtype == DType::F64) {
      param->value.copy_from(host.to(Device::CPU));
    } else {
      std::vector<float> f(v, v + n);
      param->value.copy_from(Tensor::from_vector(param->shape, f));
    }
  }
  p.params.grads.zero();
  p.step = 0;
}

int64_t Network::forward_calls(const std::string& layer_name) const {
  int64_t total = 0;
  for (const auto& call : plan_->calls)
    if (call.layer->name() == layer_name) total += call.forward_calls;
  return total;
}

std::string Network::plan_summary() const {
  const auto& p = *plan_;
  const auto& g = p.graph();
  std::ostringstream out;
  out << "shared representation (fan-out):";
  for (size_t k = 0; k < p.cut.size(); ++k)
    out << (k ? ", " : " ") << g.values[size_t(p.cut[k])].name << " " << g.values[size_t(p.cut[k])].shape;
  out << "\n";
  // "conv1 (+relu)": the ReLU after it runs in the conv's own pass; "pool1 (+relu backward)":
  // the ReLU before it has its backward in the pool's.
  const auto name_of = [&](const CallPlan& call) {
    return g.values[call.output].name + (call.fuse_relu ? " (+relu)" : "") +
           (call.relu_backward ? " (+relu backward)" : "");
  };
  out << "trunk:";
  for (const auto& call : p.calls)
    if (call.head == kTrunk && !call.fused_away) out << " " << name_of(call);
  out << "\n";
  for (size_t t = 0; t < p.tasks.size(); ++t) {
    out << "head '" << p.tasks[t].name << "' (" << loss_name(p.tasks[t].loss) << ", weight "
        << p.fan_out->weight(t) << "):";
    for (int c : p.task_plans[t].head_calls)
      if (!p.calls[size_t(c)].fused_away) out << " " << name_of(p.calls[size_t(c)]);
    out << "\n";
  }
  return out.str();
}

// ---- Data-parallel training ----

void Network::set_communicator(Communicator* communicator, bool sync_batchnorm) {
  auto& p = *plan_;
  p.comm = communicator;
  p.sync_batchnorm = sync_batchnorm;
  p.fan_out->set_communicator(communicator);
  p.global_losses = Tensor();
  if (p.options.device != Device::CUDA || p.options.dtype != DType::F32) return;
  if (p.data_parallel()) {
    // A balancer's kernels read the global losses instead of this rank's.
    const int64_t tasks = int64_t(p.task_plans.size());
    p.global_losses = Tensor::zeros({tasks}, DType::F32, Device::CUDA);
    p.shared_seeds = Tensor::zeros({tasks}, DType::F32, Device::CUDA);
    std::vector<const float*> losses;
    for (int64_t t = 0; t < tasks; ++t) losses.push_back(p.global_losses.data<float>() + t);
    p.fan_out->set_device_losses(losses);
  } else {
    std::vector<const float*> losses;
    for (const auto& tp : p.task_plans) losses.push_back(tp.loss_value.data<float>());
    p.fan_out->set_device_losses(losses);
  }
}

Communicator* Network::communicator() const { return plan_->comm; }
bool Network::data_parallel() const { return plan_->data_parallel(); }
bool Network::sync_batchnorm() const { return plan_->sync_batchnorm; }

void Network::set_shard(int64_t first_row, int64_t rows, int64_t global_rows) {
  if (first_row < 0 || rows <= 0 || first_row + rows > global_rows)
    fail("set_shard: rows [", first_row, ", ", first_row + rows,
         ") are not inside a global batch of ", global_rows);
  auto& p = *plan_;
  p.shard_first = first_row;
  p.shard_rows = rows;
  p.global_rows = global_rows;
}

namespace {

// A tensor's numbers summed (or handed out) through the host: for once-per-run or
// once-per-epoch traffic, where a copy costs nothing that matters.
template <class Apply>
void through_host(const Tensor& t, Apply&& apply) {
  if (t.numel() == 0) return;
  Tensor host = t.to(Device::CPU);
  apply(host);
  if (t.device() == Device::CPU)
    std::memcpy(t.raw(), host.raw(), size_t(t.bytes()));
  else
    copy_bytes(t.raw(), t.device(), host.raw(), Device::CPU, size_t(t.bytes()));
}

}  // namespace

void Network::broadcast_parameters() {
  auto& p = *plan_;
  if (!p.data_parallel()) return;
  for (const Tensor* t : {&p.params.values, &p.params.state})
    through_host(*t, [&](Tensor& host) {
      p.comm->broadcast(host.raw(), size_t(host.bytes()), 0, "rank 0's parameters");
    });
}

void Network::average_state() {
  auto& p = *plan_;
  if (!p.data_parallel()) return;
  through_host(p.params.state, [&](Tensor& host) {
    const double ranks = double(p.comm->size());
    if (host.dtype() == DType::F64) {
      double* v = host.data<double>();
      p.comm->allreduce_sum(v, size_t(host.numel()), "the BatchNorm running statistics");
      for (int64_t i = 0; i < host.numel(); ++i) v[i] /= ranks;
    } else {
      float* v = host.data<float>();
      p.comm->allreduce_sum(v, size_t(host.numel()), "the BatchNorm running statistics");
      for (int64_t i = 0; i < host.numel(); ++i) v[i] = float(double(v[i]) / ranks);
    }
  });
}

void Network::Plan::sum_gradients() {
  Tensor& g = params.grads;
  if (g.numel() == 0) return;
  const char* what = "the parameter gradients";
  if (g.device() == Device::CUDA)
    comm->allreduce_sum_device(g.data<float>(), size_t(g.numel()), what);
  else if (g.dtype() == DType::F64)
    comm->allreduce_sum(g.data<double>(), size_t(g.numel()), what);
  else
    comm->allreduce_sum(g.data<float>(), size_t(g.numel()), what);
}

void Network::Plan::share_device_losses(double share) {
#if defined(POLYTASK_WITH_CUDA)
  for (size_t t = 0; t < task_plans.size(); ++t)
    kernels::cuda::scale_grad(1, float(share), task_plans[t].loss_value.data<float>(),
                              global_losses.data<float>() + t, GradMode::Overwrite, cuda_stream());
  comm->allreduce_sum_device(global_losses.data<float>(), task_plans.size(), "the tasks' losses");
#else
  (void)share;
#endif
}

const float* Network::Plan::share_device_seed(size_t task, const float* seed, double share) {
#if defined(POLYTASK_WITH_CUDA)
  float* out = shared_seeds.data<float>() + task;
  kernels::cuda::scale_grad(1, float(share), seed, out, GradMode::Overwrite, cuda_stream());
  return out;
#else
  (void)task, (void)share;
  return seed;
#endif
}

}  // namespace polytask
