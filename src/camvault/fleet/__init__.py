"""A fleet of ``camvault run`` nodes sharing the cameras through leases in PostgreSQL.

``leases`` is the pure decision logic (deadlines by the monotonic clock, balancing),
``store`` the SQL (``catalog/fleet.sql``), ``node`` the loop that claims, renews and
releases leases and starts/stops the recorder of each camera accordingly.
"""
