/*
 * A small XML writer for EC2 responses. Tags are ours; every value may come
 * from a client (tag values, descriptions, names), so every value goes
 * through api_xml_escape(): markup characters become entities, and what XML
 * 1.0 cannot carry at all (control characters, invalid UTF-8, surrogates,
 * U+FFFE/U+FFFF) becomes U+FFFD, so no input can break the document.
 */
#include "apiedge_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Length of the valid UTF-8 sequence XML allows at s, or 0. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond U+10FFFF, U+FFFE and U+FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || cp == 0xfffe ||
	    cp == 0xffff)
		return 0;
	return len;
}

void api_xml_escape(struct mc_buf *b, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		switch (c) {
		case '&':
			mc_buf_append_str(b, "&amp;");
			i++;
			continue;
		case '<':
			mc_buf_append_str(b, "&lt;");
			i++;
			continue;
		case '>':
			mc_buf_append_str(b, "&gt;");
			i++;
			continue;
		case '"':
			mc_buf_append_str(b, "&quot;");
			i++;
			continue;
		case '\'':
			mc_buf_append_str(b, "&apos;");
			i++;
			continue;
		/* Kept through parsers' line-end normalisation. */
		case '\r':
			mc_buf_append_str(b, "&#13;");
			i++;
			continue;
		case '\t':
		case '\n':
			mc_buf_put_u8(b, c);
			i++;
			continue;
		default:
			break;
		}
		if (c < 0x20 || c == 0x7f) {
			/* 0x7f is legal XML but invisible trouble: replace. */
			mc_buf_append_str(b, replacement);
			i++;
			continue;
		}
		size_t len = utf8_char(s + i, n - i);
		if (len == 0) {
			mc_buf_append_str(b, replacement);
			i++;
			continue;
		}
		mc_buf_append(b, s + i, len);
		i += len;
	}
}

void api_xml_open(struct mc_buf *b, const char *tag)
{
	mc_buf_printf(b, "<%s>", tag);
}

void api_xml_close(struct mc_buf *b, const char *tag)
{
	mc_buf_printf(b, "</%s>", tag);
}

void api_xml_elem(struct mc_buf *b, const char *tag, const char *value)
{
	if (!value)
		return;
	api_xml_open(b, tag);
	api_xml_escape(b, value, strlen(value));
	api_xml_close(b, tag);
}

void api_xml_elem_fmt(struct mc_buf *b, const char *tag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	api_xml_elem(b, tag, s);
	free(s);
}

void api_xml_elem_bool(struct mc_buf *b, const char *tag, bool v)
{
	api_xml_elem(b, tag, v ? "true" : "false");
}

static const char declaration[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

void api_xml_response_begin(struct mc_buf *b, const char *action,
                            const char *version, const char *request_id)
{
	mc_buf_append_str(b, declaration);
	mc_buf_printf(b, "<%sResponse xmlns=\"http://ec2.amazonaws.com/doc/",
	              action);
	api_xml_escape(b, version, strlen(version));
	mc_buf_append_str(b, "/\">");
	api_xml_elem(b, "requestId", request_id);
}

void api_xml_response_end(struct mc_buf *b, const char *action)
{
	mc_buf_printf(b, "</%sResponse>", action);
}

void api_xml_error(struct mc_buf *b, const char *code, const char *message,
                   const char *request_id)
{
	mc_buf_append_str(b, declaration);
	mc_buf_append_str(b, "<Response><Errors><Error>");
	api_xml_elem(b, "Code", code);
	api_xml_open(b, "Message");
	api_xml_escape(b, message, strlen(message));
	api_xml_close(b, "Message");
	mc_buf_append_str(b, "</Error></Errors>");
	api_xml_elem(b, "RequestID", request_id);
	mc_buf_append_str(b, "</Response>");
}
