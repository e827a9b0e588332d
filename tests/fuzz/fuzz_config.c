/* Config files are operator input: no text may crash the parser. */
#include "config.h"
#include "mem.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct peer_config c;
	char err[512];
	char *text = xstrndup((const char *)data, size);
	peer_config_defaults(&c);
	peer_config_parse_file(&c, text, "fuzz", NULL, err, sizeof(err));
	free(text);
	return 0;
}
