/*
 * The XML writer: nothing a client sends can break the document, and the
 * envelopes are byte for byte what EC2 clients parse.
 */
#include "check.h"

#include "apiedge_int.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

static char *escaped(const char *s, size_t n)
{
	struct mc_buf b;
	mc_buf_init(&b);
	api_xml_escape(&b, s, n);
	char *out = mc_buf_strdup(&b);
	mc_buf_free(&b);
	return out;
}

#define CHECK_ESC(in, want)                                                    \
	do {                                                                   \
		char *got_ = escaped(in, sizeof(in) - 1);                      \
		CHECK_STR(got_, want);                                         \
		free(got_);                                                    \
	} while (0)

#define FFFD "\xef\xbf\xbd"

static void test_escape(void)
{
	CHECK_ESC("plain text", "plain text");
	CHECK_ESC("<tag a=\"1\" b='2'>&amp;</tag>",
	          "&lt;tag a=&quot;1&quot; b=&apos;2&apos;&gt;&amp;amp;&lt;"
	          "/tag&gt;");
	CHECK_ESC("]]><![CDATA[x]]>", "]]&gt;&lt;![CDATA[x]]&gt;");
	/* Tabs and newlines stay, CR survives parsers as a reference, the
	 * other controls cannot be in XML 1.0 at all. */
	CHECK_ESC("a\tb\nc\rd", "a\tb\nc&#13;d");
	CHECK_ESC("\x01\x08\x0b\x0c\x1f\x7f", FFFD FFFD FFFD FFFD FFFD FFFD);
	CHECK_ESC("nul\0here", "nul" FFFD "here");
	/* Valid UTF-8 passes, every invalid byte becomes U+FFFD. */
	CHECK_ESC("caf\xc3\xa9 \xe1\x88\xb4 \xf0\x9f\x98\x80",
	          "caf\xc3\xa9 \xe1\x88\xb4 \xf0\x9f\x98\x80");
	CHECK_ESC("\xc3", FFFD);                            /* truncated */
	CHECK_ESC("\xc0\xaf", FFFD FFFD);                   /* overlong */
	CHECK_ESC("\xed\xa0\x80", FFFD FFFD FFFD);          /* surrogate */
	CHECK_ESC("\xef\xbf\xbe", FFFD FFFD FFFD);          /* U+FFFE */
	CHECK_ESC("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD); /* > U+10FFFF */
	CHECK_ESC("\xff\xfe", FFFD FFFD);
	CHECK_ESC("\xe2\x82", FFFD FFFD); /* truncated at the end */
}

/* A value with everything hostile, through every byte value. */
static void test_no_raw_markup(void)
{
	char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	char *out = escaped(all, sizeof(all));
	for (const char *p = out; *p; p++) {
		unsigned char c = (unsigned char)*p;
		CHECK(c != '<' && c != '>' && c != '"' && c != '\'');
		CHECK(c >= 0x20 || c == '\t' || c == '\n');
		if (c == '&')
			CHECK(strncmp(p, "&amp;", 5) == 0 ||
			      strncmp(p, "&lt;", 4) == 0 ||
			      strncmp(p, "&gt;", 4) == 0 ||
			      strncmp(p, "&quot;", 6) == 0 ||
			      strncmp(p, "&apos;", 6) == 0 ||
			      strncmp(p, "&#13;", 5) == 0);
	}
	free(out);
}

static char *take(struct mc_buf *b)
{
	char *s = mc_buf_strdup(b);
	mc_buf_free(b);
	return s;
}

static void test_error_shape(void)
{
	struct mc_buf b;
	mc_buf_init(&b);
	api_xml_error(&b, "InvalidGroup.NotFound",
	              "The security group 'x<y>' does not exist",
	              "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE");
	char *s = take(&b);
	CHECK_STR(s,
	          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	          "<Response><Errors><Error><Code>InvalidGroup.NotFound"
	          "</Code><Message>The security group &apos;x&lt;y&gt;&apos; "
	          "does not exist</Message></Error></Errors><RequestID>"
	          "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestID>"
	          "</Response>");
	free(s);
}

static void test_envelope(void)
{
	struct mc_buf b;
	mc_buf_init(&b);
	api_xml_response_begin(&b, "CreateTags", "2014-10-01", "req-1");
	api_xml_elem_bool(&b, "return", true);
	api_xml_response_end(&b, "CreateTags");
	char *s = take(&b);
	CHECK_STR(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	             "<CreateTagsResponse xmlns=\"http://ec2.amazonaws.com/doc/"
	             "2014-10-01/\"><requestId>req-1</requestId><return>true"
	             "</return></CreateTagsResponse>");
	free(s);

	/* A hostile Version stays inside its attribute. */
	mc_buf_init(&b);
	api_xml_response_begin(&b, "X", "1\"><evil a='", "r");
	s = take(&b);
	CHECK(strstr(s, "xmlns=\"http://ec2.amazonaws.com/doc/1&quot;&gt;"
	                "&lt;evil a=&apos;/\"") != NULL);
	free(s);

	mc_buf_init(&b);
	api_xml_elem(&b, "tagValue", NULL);
	api_xml_elem_fmt(&b, "count", "%d<", 42);
	s = take(&b);
	CHECK_STR(s, "<count>42&lt;</count>");
	free(s);
}

static void test_error_statuses(void)
{
	CHECK_EQ_U64(api_error_status("AuthFailure"), 401);
	CHECK_EQ_U64(api_error_status("UnauthorizedOperation"), 403);
	CHECK_EQ_U64(api_error_status("RequestLimitExceeded"), 503);
	CHECK_EQ_U64(api_error_status("InternalError"), 500);
	CHECK_EQ_U64(api_error_status("DryRunOperation"), 412);
	CHECK_EQ_U64(api_error_status("InvalidInstanceID.NotFound"), 400);
	CHECK_EQ_U64(api_error_status("InvalidAction"), 400);
	struct api_error e;
	CHECK(api_error_set(&e, "MissingParameter", "need %s", "KeyName") < 0);
	CHECK_STR(e.message, "need KeyName");
	CHECK_EQ_U64(e.status, 400);
}

int main(void)
{
	RUN(test_escape);
	RUN(test_no_raw_markup);
	RUN(test_error_shape);
	RUN(test_envelope);
	RUN(test_error_statuses);
	return check_summary();
}
