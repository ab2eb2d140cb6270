#include "rill/status.hpp"

namespace rill {
namespace {

class status_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "rill"; }
  std::string message(int value) const override {
    return std::string(to_string(static_cast<status>(value)));
  }
  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<status>(value)) {
      case status::timeout: return std::errc::timed_out;
      case status::cancelled: return std::errc::operation_canceled;
      case status::too_large: return std::errc::message_size;
      case status::invalid: return std::errc::invalid_argument;
      case status::full: return std::errc::resource_unavailable_try_again;
      case status::empty: return std::errc::resource_unavailable_try_again;
      default: return {value, *this};
    }
  }
};

}  // namespace

const std::error_category& status_category() noexcept {
  static const status_category_impl category;
  return category;
}

}  // namespace rill
