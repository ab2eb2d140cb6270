// rill/codec/reassembler.hpp: folds a stream of rill events back into the final response, and writes it
// in the provider fixtures' `.expected.json` shape.
//
// The reassembler is the consumer-side counterpart of provider_decoder: add() every event of one response
// in order (any dialect, or events from any producer), then read result(). Text and thinking are
// concatenated (text per choice: OpenAI n > 1 and Gemini candidates), tool-call fragments are joined per
// (choice, index) exactly as sent, and the joined
// arguments are checked as JSON: arguments that are incomplete or invalid are kept with `arguments_valid`
// false, never dropped. Usage events replace each other (the last is the total). An error event makes the
// normalized stop reason `error` and the response incomplete, whatever follows.
//
// Guarantees: add() copies what it keeps, so events may be released right after the call. Not thread-safe
// (one reassembler per response). add() allocates as the result grows; it never throws except
// std::bad_alloc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rill/codec/provider.hpp"
#include "rill/event.hpp"

namespace rill::codec {

struct reassembled_thinking {
  std::uint16_t index = 0;  // content block (Anthropic) / output item / choice the thinking came from
  std::string text;
  std::string signature;
  bool redacted = false;  // a redacted_thinking block: no text; `data` holds its opaque payload
  std::string data;       // a redacted_thinking block's payload, to send back verbatim
};

struct reassembled_tool_call {
  std::uint16_t choice = 0;
  std::uint16_t index = 0;
  std::string id;
  std::string name;
  std::string arguments_raw;     // every fragment, concatenated exactly
  bool arguments_valid = false;  // arguments_raw is one complete JSON value (or empty: no arguments)
  bool ended = false;            // a tool_call_end arrived
};

struct reassembled_choice {
  std::uint16_t choice = 0;
  std::string text;
};

struct reassembled {
  std::string id;     // from message_start
  std::string model;
  std::string text;  // choice 0's text deltas in order (every text delta unless the request asked for n > 1)
  std::vector<reassembled_choice> other_choices;  // the text of choices 1, 2, ..., ordered by choice
  std::vector<reassembled_thinking> thinking;     // in order of first appearance
  std::vector<reassembled_tool_call> tool_calls;  // ordered by (choice, index)
  std::optional<usage_counts> usage;              // the last usage event, if any came
  std::optional<stop_reason> stop;                // the normalized stop reason; `error` after an error event
  bool has_error = false;
  std::string error_code;
  std::string error_message;
  bool completed = false;  // a stream_complete arrived and no error did
  std::uint64_t events = 0;
};

class reassembler {
 public:
  // Folds one event into the result. Kinds a response does not use (lifecycle, user, ...) are counted and
  // otherwise ignored. Never blocks.
  void add(const event& e);
  // The result so far; tool calls are sorted and their arguments checked on each call (cheap when nothing
  // changed). The reference stays valid until the next add() or reset().
  const reassembled& result();
  void reset();

 private:
  reassembled_tool_call& call_for(std::uint16_t choice, std::uint16_t index);
  reassembled_thinking& thinking_for(std::uint16_t index);
  std::string& text_for(std::uint16_t choice);

  reassembled result_;
  bool dirty_ = false;
};

// The provider-native fields and counters that complete a reassembled result for summary_json().
// Produced by provider_decoder::summary(); a consumer that only has events may leave it default.
struct summary_extras {
  provider dialect = provider::unknown;
  std::string_view stop_reason_native;  // empty with has_stop_reason false: null
  bool has_stop_reason = false;
  std::string_view usage_native_json;   // empty: null
  std::uint64_t sse_events_dispatched = 0;
  std::int64_t last_sequence_number = -1;  // written only for openai_responses
};

// The extras a provider_decoder knows after its stream ended. Views point into `summary`.
summary_extras extras_from(const provider_summary& summary) noexcept;

// Writes `result` (plus `extras`) as one JSON object with the `.expected.json` keys: provider, id, model,
// text, thinking [{text, signature}], tool_calls [{id, name, arguments, arguments_raw}], stop_reason,
// stop_reason_normalized, usage {input_tokens, output_tokens, total_tokens}, usage_native, error
// {type, message}, completed, sse_events_dispatched, and last_sequence_number for the Responses API. A tool
// call whose arguments are not valid JSON has "arguments": null and "arguments_valid": false; empty
// arguments are written as {}. `pretty` indents with two spaces. Allocates the returned string only.
std::string summary_json(const reassembled& result, const summary_extras& extras, bool pretty = false);

}  // namespace rill::codec
