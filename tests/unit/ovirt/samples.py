"""Realistic member texts of a configuration archive, as deploy writes them (spec
ovirt-host-integration.md §2.1; the keys are those of the deploy templates)."""

from __future__ import annotations

SD = "a6a3e5f4-1c2d-4b8e-9f0a-3b4c5d6e7f80"
SP = "00000000-0000-0000-0000-000000000000"
VMID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"

FHANSWERS = f"""\
[environment:default]
OVEHOSTED_CORE/deployProceed=bool:True
OVEHOSTED_CORE/screenProceed=bool:True
OVEHOSTED_ENGINE/clusterName=str:Default
OVEHOSTED_ENGINE/insecureSSL=none:None
OVEHOSTED_NETWORK/bridgeName=str:ovirtmgmt
OVEHOSTED_NETWORK/fqdn=str:engine.example.com
OVEHOSTED_NETWORK/gateway=str:192.0.2.1
OVEHOSTED_NOTIF/destEmail=str:root@localhost
OVEHOSTED_NOTIF/smtpPort=str:25
OVEHOSTED_NOTIF/smtpServer=str:localhost
OVEHOSTED_NOTIF/sourceEmail=str:root@localhost
OVEHOSTED_STORAGE/domainType=str:nfs
OVEHOSTED_STORAGE/sdUUID=str:{SD}
OVEHOSTED_STORAGE/spUUID=str:{SP}
OVEHOSTED_STORAGE/storageDomainConnection=str:nfs.example.com:/exports/he
OVEHOSTED_VM/vmMACAddr=str:00:16:3e:6a:7a:f9
OVEHOSTED_VM/vmMemSizeMB=int:16384
OVEHOSTED_VM/vmUUID=str:{VMID}
OVEHOSTED_VM/vmVCpus=str:4
"""

HOSTED_ENGINE_CONF = f"""\
fqdn=engine.example.com
vm_disk_id=0f0e4a77-2b48-4b6c-8a2d-71d9e1b3c4a5
vm_disk_vol_id=8d1c2e3f-4a5b-4c6d-9e7f-0a1b2c3d4e5f
vmid={VMID}
storage=nfs.example.com:/exports/he
nfs_version=auto
mnt_options=
conf=/var/run/ovirt-hosted-engine-ha/vm.conf
host_id=1
console=vnc
domainType=nfs
spUUID={SP}
sdUUID={SD}
connectionUUID=e29cf818-5ee5-46e1-85c1-8aeefa33e95d
ca_cert=/etc/pki/vdsm/libvirt-spice/ca-cert.pem
ca_subject="C=EN, L=Test, O=Test, CN=Test"
vdsm_use_ssl=true
gateway=192.0.2.1
bridge=ovirtmgmt
network_test=dns
tcp_t_address=
tcp_t_port=
metadata_volume_UUID=3b8e4a21-5c6d-4e7f-8a9b-0c1d2e3f4a5b
metadata_image_UUID=7c2d1e0f-9a8b-4c7d-8e6f-5a4b3c2d1e0f
lockspace_volume_UUID=1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d
lockspace_image_UUID=9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a
conf_volume_UUID=4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a
conf_image_UUID=6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b
# The following are used only for iSCSI storage
iqn=
portal=
user=
password=
port=
"""

BROKER_CONF = """\
[email]
smtp-server = localhost
smtp-port = 25
destination-emails = root@localhost
source-email = root@localhost

[notify]
state_transition = maintenance|start|stop|migrate|up|down
"""

VM_CONF = f"""\
vmId={VMID}
memSize=16384
display=vnc
devices={{index:2,iface:ide,address:{{ controller:0, target:0,unit:0, bus:1, type:drive}},specParams:{{}},readonly:true,deviceId:1d4c2e3f-5a6b-4c7d-8e9f-0a1b2c3d4e5f,path:,device:cdrom,shared:false,type:disk}}
devices={{index:0,iface:virtio,format:raw,poolID:{SP},volumeID:8d1c2e3f-4a5b-4c6d-9e7f-0a1b2c3d4e5f,imageID:0f0e4a77-2b48-4b6c-8a2d-71d9e1b3c4a5,specParams:{{}},readonly:false,domainID:{SD},optional:false,deviceId:0f0e4a77-2b48-4b6c-8a2d-71d9e1b3c4a5,address:{{bus:0x00, slot:0x06, domain:0x0000, type:pci, function:0x0}},device:disk,shared:exclusive,propagateErrors:off,type:disk,bootOrder:1}}
devices={{device:scsi,model:virtio-scsi,type:controller}}
devices={{nicModel:pv,macAddr:00:16:3e:6a:7a:f9,linkActive:true,network:ovirtmgmt,specParams:{{}},deviceId:2e3f4a5b-6c7d-4e8f-9a0b-1c2d3e4f5a6b,address:{{bus:0x00, slot:0x03, domain:0x0000, type:pci, function:0x0}},device:bridge,type:interface}}
devices={{device:console,type:console}}
devices={{device:vga,alias:video0,type:video}}
devices={{device:vnc,type:graphics}}
vmName=HostedEngine
spiceSecureChannels=smain,sdisplay,sinputs,scursor,splayback,srecord,ssmartcard,susbredir
smp=4
maxVCpus=16
cpuType=Skylake-Server,+spec-ctrl,+ssbd,+md-clear
emulatedMachine=pc-q35-rhel8.6.0
"""

MEMBERS_TEXT = {
    "version": "2.5.2\n",
    "fhanswers.conf": FHANSWERS,
    "hosted-engine.conf": HOSTED_ENGINE_CONF,
    "broker.conf": BROKER_CONF,
    "vm.conf": VM_CONF,
}
