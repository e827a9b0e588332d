/*
 * STS GetCallerIdentity, which EC2 clients (configuration tools checking
 * their credentials) send to the EC2 endpoint: answered in STS's own shape
 * with the account, ARN and user id of the access key that signed it.
 */
#include "apiedge_int.h"

#include <stdio.h>

int api_action_get_caller_identity(struct api_call *call)
{
	const struct api_key_info *k = &call->auth->key;
	char arn[API_NAME_MAX + 64];
	if (k->user_arn[0])
		snprintf(arn, sizeof(arn), "%s", k->user_arn);
	else
		snprintf(arn, sizeof(arn), "arn:aws:iam::%s:root",
		         k->account_id);
	/* A root identity's user id is the account id. */
	const char *user_id = k->user_id[0] ? k->user_id : k->account_id;

	struct mc_buf *b = call->out;
	mc_buf_append_str(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	                     "<GetCallerIdentityResponse xmlns=\"https://"
	                     "sts.amazonaws.com/doc/2011-06-15/\">");
	api_xml_open(b, "GetCallerIdentityResult");
	api_xml_elem(b, "Arn", arn);
	api_xml_elem(b, "UserId", user_id);
	api_xml_elem(b, "Account", k->account_id);
	api_xml_close(b, "GetCallerIdentityResult");
	api_xml_open(b, "ResponseMetadata");
	api_xml_elem(b, "RequestId", call->request_id);
	api_xml_close(b, "ResponseMetadata");
	api_xml_close(b, "GetCallerIdentityResponse");
	return 0;
}
