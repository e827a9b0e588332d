"""The AWS SDK for JavaScript v3 (@aws-sdk/client-ec2 and client-sts from
npm, installed by scripts/setup into tests/clients/node_modules) on Debian's
node, against a live cloud of 3 peers, 2 edges: every action of the EC2
contract (contract.py).  Calls run in one node process (jsclient.mjs);
errors surface as the SDK's ServiceException: err.name and err.Code."""

import unittest

import fixture
from contract import Ec2Contract
from fixture import JsSdk


class JsSdkContract(Ec2Contract, unittest.TestCase):
    client_class = JsSdk

    def test_auth_errors(self):
        wrong = fixture.Account("wrong", self.cloud.A.id,
                                self.cloud.A.key_id, "x" * 40)
        with self.assertRaises(fixture.ApiError) as cm:
            JsSdk(self.cloud, wrong, 0).call("DescribeRegions")
        self.assertIn(cm.exception.code,
                      ("AuthFailure", "SignatureDoesNotMatch"))
        self.assertEqual(cm.exception.detail.get("Code"), cm.exception.code)
        nobody = fixture.Account("nobody", "000000000000",
                                 "AKIAIOSFODNN7EXAMPLE", "y" * 40)
        with self.assertRaises(fixture.ApiError) as cm:
            JsSdk(self.cloud, nobody, 1).call("GetCallerIdentity",
                                              service="sts")
        self.assertEqual(cm.exception.code, "AuthFailure")


if __name__ == "__main__":
    fixture.main()
