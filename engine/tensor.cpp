#include "engine/tensor.h"

#include <cstring>
#include <limits>

#include "kernels/elementwise.h"
#include "kernels/error.h"

namespace polytask {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: return 8;
    case DType::F32:
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  return 4;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
    case DType::U8: return "u8";
  }
  return "?";
}

struct Tensor::Storage {
  Storage(Device d, size_t n) : device(d), bytes(n), data(allocate_bytes(d, n)) {}
  ~Storage() { free_bytes(device, data); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  Device device;
  size_t bytes;
  void* data;
};

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    if (d < 0) fail("cannot allocate a tensor of negative shape ", shape);
  // numel() fails on an element count past int64_t; the byte count must fit too.
  if (uint64_t(shape.numel()) > std::numeric_limits<int64_t>::max() / dtype_size(dtype))
    fail("cannot allocate a tensor of shape ", shape, " (", dtype_name(dtype),
         "): its size in bytes exceeds 2^63 - 1");
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>(device, t.bytes());
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero();
  return t;
}

template <class T>
Tensor Tensor::from_vector(const Shape& shape, const std::vector<T>& values) {
  if (int64_t(values.size()) != shape.numel())
    fail("from_vector: ", values.size(), " values for shape ", shape);
  Tensor t = empty(shape, dtype_of<T>());
  if (t.bytes() > 0) std::memcpy(t.raw(), values.data(), t.bytes());  // no null pointers to memcpy
  return t;
}

void* Tensor::raw() const {
  if (!storage_) return nullptr;
  return static_cast<char*>(storage_->data) + offset_bytes_;
}

void Tensor::check_dtype(DType expected) const {
  if (dtype_ != expected)
    fail("tensor ", describe(), " accessed as ", dtype_name(expected));
}

Tensor Tensor::view(const Shape& shape) const {
  if (shape.numel() != numel())
    fail("view: cannot see ", describe(), " as shape ", shape, " (", shape.numel(), " elements)");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  if (shape_.rank() == 0 || begin < 0 || end < begin || end > shape_[0])
    fail("slice [", begin, ", ", end, ") out of range for ", describe());
  Tensor t = *this;
  const int64_t row = shape_[0] ? numel() / shape_[0] : 0;
  t.offset_bytes_ += size_t(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::to(Device device) const {
  if (device == device_) return *this;
  Tensor t = empty(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  if (!(src.shape_ == shape_) || src.dtype_ != dtype_)
    fail("copy: cannot copy ", src.describe(), " into ", describe());
  copy_bytes(raw(), device_, src.raw(), src.device_, bytes());
}

void Tensor::zero() { zero_bytes(device_, raw(), bytes()); }

void Tensor::fill(double value) {
  if (device_ != Device::CPU) {
#if defined(POLYTASK_WITH_CUDA)
    if (dtype_ == DType::F32) return kernels::cuda::fill(numel(), float(value), data<float>(), cuda_stream());
#endif
    fail("fill: ", describe(), " (only f32 tensors are filled on the GPU)");
  }
  const int64_t n = numel();
  switch (dtype_) {
    case DType::F32: { float* p = data<float>(); for (int64_t i = 0; i < n; ++i) p[i] = float(value); break; }
    case DType::F64: { double* p = data<double>(); for (int64_t i = 0; i < n; ++i) p[i] = value; break; }
    case DType::I32: { int32_t* p = data<int32_t>(); for (int64_t i = 0; i < n; ++i) p[i] = int32_t(value); break; }
    case DType::U8: { uint8_t* p = data<uint8_t>(); for (int64_t i = 0; i < n; ++i) p[i] = uint8_t(value); break; }
  }
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  check_dtype(dtype_of<T>());
  std::vector<T> out(static_cast<size_t>(numel()));
  copy_bytes(out.data(), Device::CPU, raw(), device_, bytes());
  return out;
}

double Tensor::item(int64_t i) const {
  if (device_ != Device::CPU) fail("item: ", describe(), " is not on the CPU");
  if (i < 0 || i >= numel()) fail("item ", i, " out of range for ", describe());
  switch (dtype_) {
    case DType::F32: return double(data<float>()[i]);
    case DType::F64: return data<double>()[i];
    case DType::I32: return double(data<int32_t>()[i]);
    case DType::U8: return double(data<uint8_t>()[i]);
  }
  return 0;
}

std::string Tensor::describe() const {
  return cat(dtype_name(dtype_), " ", shape_, " on ", device_name(device_));
}

void check_shape(const std::string& op, const std::string& what, const Tensor& t,
                 const Shape& expected) {
  if (!(t.shape() == expected))
    fail(op, ": expected ", what, " of shape ", expected, ", got ", t.shape());
}

template Tensor Tensor::from_vector(const Shape&, const std::vector<float>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<double>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<int32_t>&);
template Tensor Tensor::from_vector(const Shape&, const std::vector<uint8_t>&);
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<uint8_t> Tensor::to_vector() const;

}  // namespace polytask
