package shop.billing;

import java.io.Serializable;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Invoice as stored in the billing schema. */
record Invoice(long id, String number, String customerId, long totalCents, String status) implements Serializable {
}

/** JDBC access to the invoices table. */
public class InvoiceRepository {
    private final Connection conn;

    public InvoiceRepository(Connection conn) {
        this.conn = conn;
    }

    public Optional<Invoice> findById(long id) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT id, number, customer_id, total_cents, status FROM invoices WHERE id = ?")) {
            ps.setLong(1, id);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? Optional.of(map(rs)) : Optional.empty();
            }
        }
    }

    public List<Invoice> findByCustomer(String customerId) throws SQLException {
        List<Invoice> result = new ArrayList<>();
        try (Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery("SELECT id, number, customer_id, total_cents, status FROM invoices WHERE customer_id = '" + customerId + "' ORDER BY id DESC")) {
            while (rs.next()) {
                result.add(map(rs));
            }
        }
        return result;
    }

    public int markPaid(String invoiceNumber) throws SQLException {
        try (Statement st = conn.createStatement()) {
            return st.executeUpdate(String.format("UPDATE invoices SET status = 'PAID', paid_at = now() WHERE number = '%s'", invoiceNumber));
        }
    }

    public long insert(Invoice invoice) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement(
                "INSERT INTO invoices (number, customer_id, total_cents, status) VALUES (?, ?, ?, ?)",
                Statement.RETURN_GENERATED_KEYS)) {
            ps.setString(1, invoice.number());
            ps.setString(2, invoice.customerId());
            ps.setLong(3, invoice.totalCents());
            ps.setString(4, invoice.status());
            ps.executeUpdate();
            try (ResultSet keys = ps.getGeneratedKeys()) {
                keys.next();
                return keys.getLong(1);
            }
        }
    }

    private static Invoice map(ResultSet rs) throws SQLException {
        return new Invoice(
                rs.getLong("id"),
                rs.getString("number"),
                rs.getString("customer_id"),
                rs.getLong("total_cents"),
                rs.getString("status"));
    }
}
