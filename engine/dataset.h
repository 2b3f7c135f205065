// An in-memory labelled dataset: one tensor per model input, (N, *input shape), and one per
// task target, (N,) class indices or (N, *output shape) values, matched by name.
#pragma once

#include <string>
#include <vector>

#include "engine/tensor.h"

namespace polytask {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

struct Dataset {
  std::vector<NamedTensor> inputs;   // by model input name
  std::vector<NamedTensor> targets;  // by task name

  int64_t size() const { return inputs.empty() ? 0 : inputs.front().tensor.dim(0); }
  // Rows [begin, end) as views (no copy).
  Dataset rows(int64_t begin, int64_t end) const;
  const Tensor& input(const std::string& name) const;
  const Tensor& target(const std::string& name) const;
  // Throws unless every tensor has the same number of rows.
  void validate() const;
};

}  // namespace polytask
