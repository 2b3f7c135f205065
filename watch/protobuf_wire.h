// The protocol-buffer wire format (https://protobuf.dev/programming-guides/encoding/), as far
// as TensorBoard's event files need it. Written by hand: the handful of messages an events file
// holds do not justify a dependency on the protobuf library and its code generator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace polytask::watch::wire {

enum class WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// Appends fields to one message. A nested message is encoded into its own Encoder first and
// added with bytes(): its length prefix must be known before its contents.
class Encoder {
 public:
  Encoder& varint(int field, uint64_t value);
  // int32/int64/enum: negative values are the 10-byte two's complement varint, as protoc does.
  Encoder& int64(int field, int64_t value) { return varint(field, static_cast<uint64_t>(value)); }
  Encoder& double_(int field, double value);
  Encoder& float_(int field, float value);
  Encoder& bytes(int field, std::string_view value);  // string, bytes or a nested message
  Encoder& packed_doubles(int field, const std::vector<double>& values);

  const std::string& str() const { return out_; }

 private:
  void key(int field, WireType type);
  void raw_varint(uint64_t value);

  std::string out_;
};

// One field as found in a message. `bits` holds a varint's value or a fixed field's raw bits.
struct Field {
  int number = 0;
  WireType type = WireType::kVarint;
  uint64_t bits = 0;
  std::string_view bytes;  // length-delimited fields only; points into the decoded message

  int64_t as_int64() const { return static_cast<int64_t>(bits); }
  double as_double() const;  // a fixed64 field
  float as_float() const;    // a fixed32 field
};

// Walks the fields of one message in order. Malformed input (a varint running past the end or
// longer than 10 bytes, a length past the end, a group or unknown wire type, field number 0)
// throws polytask::Error saying what and at which byte of the message.
class Decoder {
 public:
  explicit Decoder(std::string_view message) : in_(message) {}
  // The next field into `field`; false at the end of the message.
  bool next(Field& field);

 private:
  uint64_t raw_varint();
  std::string_view take(uint64_t n, const char* what);

  std::string_view in_;
  size_t pos_ = 0;
};

// Little-endian fixed-width integers, the byte order of protobuf's fixed fields and of the
// TFRecord framing, independent of the host's.
void put_le32(std::string& out, uint32_t value);
void put_le64(std::string& out, uint64_t value);
uint32_t get_le32(const char* p);
uint64_t get_le64(const char* p);

}  // namespace polytask::watch::wire
