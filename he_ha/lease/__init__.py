"""The sanlock layer: lockspace, peer liveness and the VM lease (client, worker, keeper)."""
