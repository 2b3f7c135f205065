#include "engine/device_data.h"

#include <cmath>

#include "kernels/gather.h"

namespace polytask {

namespace {

// The divisor the readers normalise bytes with (datasets/idx.cpp, datasets/cifar10.cpp).
constexpr float kByteScale = 255.0f;

// The bytes behind `host` (f32) when every value is k / 255 for an integer k in [0, 255],
// computed as the readers compute it; empty otherwise.
std::vector<uint8_t> as_bytes(const Tensor& host) {
  const float* v = host.data<float>();
  std::vector<uint8_t> bytes(size_t(host.numel()));
  for (int64_t i = 0; i < host.numel(); ++i) {
    const float scaled = v[i] * kByteScale;
    if (!(scaled >= 0.0f && scaled <= 255.0f)) return {};
    const auto k = uint8_t(std::lround(scaled));
    if (float(k) / kByteScale != v[i]) return {};
    bytes[size_t(i)] = k;
  }
  return bytes;
}

}  // namespace

DeviceDataset::Column DeviceDataset::upload(const Tensor& host, const Tensor& buffer,
                                            const std::string& what) {
  if (!(host.shape().sample() == buffer.shape().sample()) || host.dtype() != buffer.dtype())
    fail("dataset '", what, "' is ", host.describe(), " but the network expects rows of ",
         buffer.shape().sample(), " as ", dtype_name(buffer.dtype()));
  if (buffer.device() != Device::CUDA)
    fail("a device dataset is for networks on the GPU; '", what, "' goes to ", buffer.describe());
  Column column;
  column.row_elements = host.shape().sample().numel();
  const Tensor contiguous = host.to(Device::CPU);
  if (host.dtype() == DType::F32) {
    const std::vector<uint8_t> bytes = as_bytes(contiguous);
    if (!bytes.empty()) {
      column.bytes = true;
      column.values = Tensor::from_vector(host.shape(), bytes).to(Device::CUDA);
      return column;
    }
  }
  column.values = contiguous.to(Device::CUDA);
  return column;
}

DeviceDataset::DeviceDataset(const Dataset& data, const Network& network) {
  data.validate();
  size_ = data.size();
  if (size_ > int64_t(INT32_MAX)) fail("a device dataset holds at most 2^31 - 1 rows, got ", size_);
  const auto& g = network.model().graph();
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const std::string& name = g.values[g.inputs[i]].name;
    inputs_.push_back(upload(data.input(name), network.input_buffer(i), name));
  }
  for (size_t t = 0; t < network.tasks().size(); ++t) {
    const std::string& name = network.tasks()[t].name;
    targets_.push_back(upload(data.target(name), network.target_buffer(t), name));
  }
}

size_t DeviceDataset::bytes() const {
  size_t total = 0;
  for (const auto* columns : {&inputs_, &targets_})
    for (const Column& c : *columns) total += c.values.bytes();
  return total;
}

void DeviceDataset::gather(const int32_t* indices, int64_t n, Network& network,
                           bool with_targets) const {
#if defined(POLYTASK_WITH_CUDA)
  const auto stream = cuda_stream();
  const auto gather_column = [&](const Column& c, const Tensor& dst) {
    if (c.bytes)
      kernels::cuda::gather_rows_normalized(n, c.row_elements, indices, c.values.data<uint8_t>(),
                                            kByteScale, dst.data<float>(), stream);
    else if (c.values.dtype() == DType::I32)
      kernels::cuda::gather_rows(n, c.row_elements, indices, c.values.data<int32_t>(),
                                 dst.data<int32_t>(), stream);
    else
      kernels::cuda::gather_rows(n, c.row_elements, indices, c.values.data<float>(),
                                 dst.data<float>(), stream);
  };
  for (size_t i = 0; i < inputs_.size(); ++i) gather_column(inputs_[i], network.input_buffer(i));
  if (with_targets)
    for (size_t t = 0; t < targets_.size(); ++t)
      gather_column(targets_[t], network.target_buffer(t));
#else
  (void)indices, (void)n, (void)network, (void)with_targets;
  fail("a device dataset needs CUDA, which this build lacks");
#endif
}

}  // namespace polytask
