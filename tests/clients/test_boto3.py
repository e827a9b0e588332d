"""boto3 (Debian's python3-boto3) against a live cloud of 3 peers, 2 edges:
every action of the EC2 contract (contract.py) with errors as
botocore.exceptions.ClientError, response['Error']['Code'], plus boto3's
resource layer and waiters-free paginators.

boto3 is Debian's, importable by /usr/bin/python3; under another python3
without it this file re-runs itself there."""

import os
import sys

try:
    import boto3  # noqa: F401
except ImportError:
    if sys.executable != "/usr/bin/python3" and \
            os.access("/usr/bin/python3", os.X_OK):
        os.execv("/usr/bin/python3",
                 ["/usr/bin/python3", os.path.abspath(__file__)]
                 + sys.argv[1:])
    raise

import unittest

import fixture
from contract import Ec2Contract
from fixture import Boto3, eventually, unique


class Boto3Contract(Ec2Contract, unittest.TestCase):
    client_class = Boto3


class Boto3Extras(unittest.TestCase):
    """boto3's resource layer (the objects users actually hold), its other
    signatures, and its errors for bad keys."""

    @classmethod
    def setUpClass(cls):
        cloud = fixture.CLOUD
        cls.cloud = cloud
        cls.c0 = Boto3(cloud, cloud.A, 0)
        cls.c1 = Boto3(cloud, cloud.A, 1)

    def resource(self, edge):
        from botocore.config import Config
        session = boto3.session.Session(
            aws_access_key_id=self.cloud.A.key_id,
            aws_secret_access_key=self.cloud.A.secret,
            region_name=fixture.REGION)
        return session.resource(
            "ec2", endpoint_url=self.cloud.endpoint(edge),
            config=Config(retries={"total_max_attempts": 1,
                                   "mode": "standard"}))

    def test_security_group_resource(self):
        ec2 = self.resource(0)
        vpc = next(iter(ec2.vpcs.filter(Filters=[
            {"Name": "isDefault", "Values": ["true"]}])))
        name = unique("res")
        sg = ec2.create_security_group(GroupName=name, Description="res",
                                       VpcId=vpc.id)
        sg.authorize_ingress(IpProtocol="tcp", FromPort=5432, ToPort=5432,
                             CidrIp="10.0.0.0/8")
        sg.create_tags(Tags=[{"Key": "Name", "Value": name}])
        other = self.resource(1).SecurityGroup(sg.id)

        def loaded():
            other.reload()
            self.assertEqual(other.group_name, name)
            self.assertEqual([(p["FromPort"], p["ToPort"])
                              for p in other.ip_permissions], [(5432, 5432)])
            self.assertEqual(other.tags, [{"Key": "Name", "Value": name}])
            self.assertEqual(other.vpc_id, vpc.id)
        eventually(loaded, what="group via edge 1's resource")
        other.delete()

        def gone():
            with self.assertRaises(boto3.exceptions.botocore.exceptions
                                   .ClientError) as cm:
                sg.reload()
            self.assertEqual(cm.exception.response["Error"]["Code"],
                             "InvalidGroup.NotFound")
        eventually(gone, what="deleted group gone on edge 0")

    def test_key_pair_resource(self):
        ec2 = self.resource(1)
        name = unique("reskey")
        kp = ec2.create_key_pair(KeyName=name)
        self.assertIn("PRIVATE KEY", kp.key_material)
        info = self.resource(0).KeyPair(name)
        eventually(lambda: (info.reload(), self.assertEqual(
            info.key_fingerprint, kp.key_fingerprint)),
            what="key via edge 0's resource")
        info.delete()

    def test_collections(self):
        ec2 = self.resource(0)
        self.assertEqual(list(ec2.instances.all()), [])
        zones = [z["ZoneName"] for z in ec2.meta.client
                 .describe_availability_zones()["AvailabilityZones"]]
        self.assertEqual(sorted(zones), list(fixture.ZONES))
        subnets = list(ec2.subnets.filter(Filters=[
            {"Name": "default-for-az", "Values": ["true"]}]))
        self.assertEqual(len(subnets), len(fixture.ZONES))
        self.assertTrue(list(ec2.security_groups.filter(
            GroupNames=["default"])))

    def test_signature_variants(self):
        """What botocore can sign besides its default SigV4 header: SigV4
        presigned URLs (a GET with X-Amz-* in the query) and SigV2
        (HmacSHA256, a POST form), for reads and a write."""
        import urllib.request
        from botocore.config import Config
        ec2 = self.c0.clients["ec2"]
        # botocore signs the operation's own method (POST) unless told:
        # a URL to GET must be presigned for GET.
        url = ec2.generate_presigned_url(
            "describe_regions", Params={"RegionNames": [fixture.REGION]},
            ExpiresIn=300, HttpMethod="GET")
        self.assertIn("X-Amz-Signature=", url)
        with urllib.request.urlopen(url, timeout=30) as r:
            self.assertEqual(r.status, 200)
            body = r.read().decode()
        self.assertIn(f"<regionName>{fixture.REGION}</regionName>", body)
        session = boto3.session.Session(
            aws_access_key_id=self.cloud.A.key_id,
            aws_secret_access_key=self.cloud.A.secret,
            region_name=fixture.REGION)
        v2 = session.client("ec2", endpoint_url=self.cloud.endpoint(1),
                            config=Config(signature_version="v2",
                                          retries={"total_max_attempts": 1}))
        self.assertEqual(v2.describe_regions()["Regions"][0]["RegionName"],
                         fixture.REGION)
        name = unique("v2")
        gid = v2.create_security_group(GroupName=name,
                                       Description="v2")["GroupId"]
        eventually(lambda: self.c0.call("DescribeSecurityGroups",
                                        {"GroupIds": [gid]}),
                   what="group made with SigV2 on edge 0")
        v2.delete_security_group(GroupId=gid)

    def test_auth_errors(self):
        from botocore.exceptions import ClientError
        wrong = fixture.Account("wrong", self.cloud.A.id,
                                self.cloud.A.key_id, "x" * 40)
        with self.assertRaises(fixture.ApiError) as cm:
            Boto3(self.cloud, wrong, 0).call("DescribeRegions")
        self.assertIn(cm.exception.code,
                      ("AuthFailure", "SignatureDoesNotMatch"))
        self.assertIsInstance(cm.exception.detail["exception"], ClientError)
        nobody = fixture.Account("nobody", "000000000000",
                                 "AKIAIOSFODNN7EXAMPLE", "y" * 40)
        with self.assertRaises(fixture.ApiError) as cm:
            Boto3(self.cloud, nobody, 1).call("GetCallerIdentity",
                                              service="sts")
        self.assertEqual(cm.exception.code, "AuthFailure")


if __name__ == "__main__":
    fixture.main()
