"""billing_delivery loses its refund_id index: written on every credit, read by none."""


def upgrade(migrator, database):
    """Drop billing_delivery_refund_id (repeatable).

    No query looks deliveries up by refund and refunds are never deleted (so no
    foreign-key check reads it either); each delivery row paid for it inside
    the callback's write lock.
    """
    database.execute_sql("DROP INDEX IF EXISTS billing_delivery_refund_id")
