// An N-d tensor: a shape, an element type, a device, and a view into shared storage.
// Views (reshape, slicing a batch) share storage and cost no allocation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/shape.h"

namespace polytask {

// F64 exists for the CPU reference path (gradient checks of whole models in double);
// I32 holds class labels; U8 holds images kept as bytes on the GPU (engine/device_data.h).
enum class DType { F32, F64, I32, U8 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);

template <class T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  // A CPU tensor holding a copy of `values`, whose size must match the shape.
  template <class T>
  static Tensor from_vector(const Shape& shape, const std::vector<T>& values);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_.numel(); }
  int64_t dim(int axis) const { return shape_[axis]; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  size_t bytes() const { return size_t(numel()) * dtype_size(dtype_); }

  // Typed raw pointer (a device pointer for CUDA tensors); throws if T is not the dtype.
  template <class T>
  T* data() const {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(raw());
  }
  void* raw() const;

  // The same storage seen with another shape of equal element count.
  Tensor view(const Shape& shape) const;
  // Rows [begin, end) of the leading axis.
  Tensor slice(int64_t begin, int64_t end) const;
  // A copy on `device` (or this tensor if it is already there).
  Tensor to(Device device) const;
  // Copies another tensor of the same shape and dtype into this one, across devices.
  void copy_from(const Tensor& src);
  void zero();
  // Fills every element with `value` (CPU tensors, and f32 CUDA tensors).
  void fill(double value);

  // A CPU copy of the elements as T (T must be the dtype).
  template <class T>
  std::vector<T> to_vector() const;
  // Element i converted to double (CPU tensors); for tests and printing.
  double item(int64_t i = 0) const;

  std::string describe() const;  // "f32 (128, 10) on cpu"

 private:
  struct Storage;
  void check_dtype(DType expected) const;

  std::shared_ptr<Storage> storage_;
  size_t offset_bytes_ = 0;
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
};

// Throws "<op>: expected <what> of shape A, got B" when shapes differ.
void check_shape(const std::string& op, const std::string& what, const Tensor& t,
                 const Shape& expected);

}  // namespace polytask
