// A dataset held on the GPU for a whole run, so that a training step assembles its batch on the
// device instead of copying it from the host: every input and target the network reads is
// uploaded once; images whose values are all k/255 (what the IDX and CIFAR readers produce)
// travel and stay as bytes, a quarter of the size, and are normalised by the gather kernel into
// exactly the floats the host holds.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/dataset.h"
#include "engine/network.h"

namespace polytask {

class DeviceDataset {
 public:
  // Throws naming the tensor when the data does not fit the network's buffers (as the host
  // path does) or the device runs out of memory.
  DeviceDataset(const Dataset& data, const Network& network);

  int64_t size() const { return size_; }
  // Bytes on the device, for logs.
  size_t bytes() const;
  // The network's input (and, with targets, target) buffers receive rows indices[0, n) of the
  // data; indices is a device array of int32 row numbers.
  void gather(const int32_t* indices, int64_t n, Network& network, bool with_targets) const;

 private:
  struct Column {
    Tensor values;       // (N, ...) on the device: f32 or i32 as on the host, or u8 images
    bool bytes = false;  // u8 values v standing for v / 255
    int64_t row_elements = 0;
  };
  static Column upload(const Tensor& host, const Tensor& buffer, const std::string& what);

  int64_t size_ = 0;
  std::vector<Column> inputs_, targets_;  // in the network's input and task order
};

}  // namespace polytask
