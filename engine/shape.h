// A tensor shape with a fixed maximum rank, stored inline so that taking views of a batch
// inside a training step never touches the heap.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>

#include "kernels/error.h"

namespace polytask {

class Shape {
 public:
  static constexpr int kMaxRank = 6;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) {
    if (dims.size() > kMaxRank) fail("shape of rank ", dims.size(), " exceeds the maximum ", kMaxRank);
    for (int64_t d : dims) dims_[rank_++] = d;
  }

  int rank() const { return rank_; }
  int64_t operator[](int axis) const { return dims_[axis]; }
  int64_t& operator[](int axis) { return dims_[axis]; }
  const int64_t* begin() const { return dims_.data(); }
  const int64_t* end() const { return dims_.data() + rank_; }

  // The element count. Sizes come from flags, configs and file headers, so the product is
  // checked: a count past int64_t fails here, naming the shape, before anything is allocated
  // from a wrapped-around value.
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank_; ++i)
      if (__builtin_mul_overflow(n, dims_[i], &n))
        fail("shape ", str(), " has too many elements (more than 2^63 - 1)");
    return n;
  }

  // (batch, *this): the shape of a batch of samples of this shape.
  Shape with_batch(int64_t batch) const {
    Shape out;
    out.push_back(batch);
    for (int i = 0; i < rank_; ++i) out.push_back(dims_[i]);
    return out;
  }
  // This shape without its leading (batch) axis.
  Shape sample() const {
    Shape out;
    for (int i = 1; i < rank_; ++i) out.push_back(dims_[i]);
    return out;
  }

  void push_back(int64_t d) {
    if (rank_ == kMaxRank) fail("shape exceeds the maximum rank ", kMaxRank);
    dims_[rank_++] = d;
  }

  bool operator==(const Shape& other) const {
    if (rank_ != other.rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (dims_[i] != other.dims_[i]) return false;
    return true;
  }

  // "(3, 28, 28)"
  std::string str() const {
    std::string s = "(";
    for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
    return s + (rank_ == 1 ? ",)" : ")");
  }

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

inline std::ostream& operator<<(std::ostream& out, const Shape& s) { return out << s.str(); }

}  // namespace polytask
