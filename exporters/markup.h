#pragma once
// Text for XML and HTML pages (the flame graph SVG, the status page): any bytes in, valid
// character data out, since names come from VMs and ELF files nobody vetted.
#include <string>
#include <string_view>

namespace kvmprof {

// The characters of a name, decoded from UTF-8: malformed sequences (overlong, surrogate,
// truncated, beyond U+10FFFF), control characters (which XML 1.0 forbids) and the
// non-characters U+FFFE/U+FFFF become U+FFFD.
std::u32string characters(std::string_view text);

// Escaped for element content and attribute values (& < > " '), valid UTF-8 out.
std::string xml_escape(std::u32string_view text);
std::string xml_escape(std::string_view text);

// As xml_escape, but control characters shown as \n, \t, \r, \xNN: a name as it really is.
std::string visible_text(std::string_view text);

// "web 1" -> "web%201": a query value (a VM name in a link or a request), %-escaped except
// letters, digits and -_.~ (RFC 3986 unreserved).
std::string url_escape(std::string_view text);

}  // namespace kvmprof
