#include "engine/callbacks/csv_logger.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/safetensors.h"
#include "engine/trainer.h"
#include "kernels/error.h"

namespace polytask::callbacks {

namespace {

std::string csv_number(double v) {
  if (std::isnan(v)) return "nan";  // what Python's csv module writes for float('nan')
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", v);
  return text;
}

void write_whole(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

}  // namespace

CSVLogger::CSVLogger(std::string path) : path_(std::move(path)) {
  if (path_.empty()) fail("CSVLogger: no file given");
}

void CSVLogger::on_train_begin(TrainingContext& context) {
  text_.clear();
  keys_.clear();
  if (context.initial_epoch == 0 || !std::filesystem::exists(path_)) return;
  std::ifstream in(path_);
  std::string line;
  if (!std::getline(in, line)) return;
  // The header: "epoch,key1,key2,..."
  std::stringstream header(line);
  std::string key;
  std::getline(header, key, ',');
  if (key != "epoch") fail(path_, ":1: expected a header starting with 'epoch', got '", line, "'");
  while (std::getline(header, key, ',')) keys_.push_back(key);
  text_ = line + "\n";
  for (int number = 2; std::getline(in, line); ++number) {
    char* end = nullptr;
    const long epoch = std::strtol(line.c_str(), &end, 10);
    if (end == line.c_str() || *end != ',')
      fail(path_, ":", number, ": expected a row starting with its epoch, got '",
           line.substr(0, 40), "'");
    if (epoch <= context.initial_epoch) text_ += line + "\n";
  }
}

void CSVLogger::on_epoch_end(const EpochLog& log, const Logs& logs, TrainingContext&) {
  if (text_.empty()) {
    text_ = "epoch";
    for (const auto& [key, value] : logs) {
      keys_.push_back(key);
      text_ += ',';
      text_ += key;
    }
    text_ += "\n";
  }
  std::string row = std::to_string(log.epoch);
  for (const auto& key : keys_) {
    const auto it = logs.find(key);
    row += ',';
    if (it != logs.end()) row += csv_number(it->second);
  }
  text_ += row + "\n";
  write_whole(path_, text_);
}

}  // namespace polytask::callbacks
