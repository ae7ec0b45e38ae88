component {
    this.name = "OrdersPortal";
    this.sessionManagement = true;
    this.sessionTimeout = createTimeSpan(0, 0, 30, 0);

    this.datasources["orders"] = {
        class: "org.postgresql.Driver",
        connectionString: "jdbc:postgresql://db.internal:5432/orders",
        username: "portal",
        password: "⟦S:password⟧"
    };

    function onApplicationStart() {
        application.apiKey = server.system.environment.⟦L=PAYMENTS_API_KEY⟧;
        application.mapsKey = "⟦S:google-api⟧";
        return true;
    }
}
