/* ImportKeyPair's public key reader (OpenSSH lines, RFC 4716, PEM, DER):
 * anything a client uploads is refused or read without crashing, and what
 * is read reads back: the OpenSSH line it yields imports to the same key
 * type and fingerprint. */
#include "apiedge_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_key_material m, again;
	if (api_keypair_import(data, size, &m) != 0)
		return 0;
	if (!m.fingerprint[0] || m.private_pem ||
	    strncmp(m.public_line, "ssh-", 4) != 0)
		abort();
	if (api_keypair_import(m.public_line, strlen(m.public_line), &again) !=
	        0 ||
	    again.type != m.type ||
	    strcmp(again.fingerprint, m.fingerprint) != 0 ||
	    strcmp(again.public_line, m.public_line) != 0)
		abort();
	api_key_material_free(&again);
	api_key_material_free(&m);
	return 0;
}
