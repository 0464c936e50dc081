"""The original ovirt-ha-broker's XML-RPC unix socket, served by the he-ha daemon, so that
VDSM, the engine UI, cockpit and the original ``hosted-engine`` keep working (docs/broker-socket.md)."""

from he_ha.broker_socket.access import KVM_GROUP, VDSM_USER, MutationAccess, VdsmIds
from he_ha.broker_socket.methods import AGENT_ONLY, BrokerBackend, BrokerMethods
from he_ha.broker_socket.wire import Call, xmlrpc_app
from he_ha.broker_socket.xmlrpc_server import BrokerServer, BrokerServerError

__all__ = [
    "AGENT_ONLY",
    "KVM_GROUP",
    "VDSM_USER",
    "BrokerBackend",
    "BrokerMethods",
    "BrokerServer",
    "BrokerServerError",
    "Call",
    "MutationAccess",
    "VdsmIds",
    "xmlrpc_app",
]
