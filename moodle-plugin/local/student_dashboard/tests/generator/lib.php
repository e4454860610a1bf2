<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

/**
 * Data generator of the student dashboard: rows as the sync would write them.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class local_student_dashboard_generator extends component_generator_base {

    /** @var int Counter for generated Zoho ids. */
    protected int $count = 0;

    /**
     * Reset the counter between tests.
     */
    public function reset() {
        $this->count = 0;
    }

    /**
     * Create a registration.
     *
     * @param array $row Wire fields; userid is required.
     * @return stdClass The stored record.
     */
    public function create_registration(array $row): stdClass {
        return $this->create('registrations', $row + [
            'student_zoho_id' => 'S' . $row['userid'],
            'program' => 'BTEC Level 5 Diploma in IT',
            'registration_date' => '2025-09-01',
            'total_fee' => '10000.00',
            'scholarship_percent' => '20',
            'currency' => 'USD',
            'status' => 'Active',
        ]);
    }

    /**
     * Create a payment.
     *
     * @param array $row Wire fields; userid is required.
     * @return stdClass The stored record.
     */
    public function create_payment(array $row): stdClass {
        return $this->create('payments', $row + [
            'student_zoho_id' => 'S' . $row['userid'],
            'registration_zoho_id' => '',
            'amount' => '2000.00',
            'payment_date' => '2026-01-15',
            'status' => 'Paid',
            'method' => 'Card',
        ]);
    }

    /**
     * Create a BTEC unit.
     *
     * @param array $row Wire fields.
     * @return stdClass The stored record.
     */
    public function create_unit(array $row = []): stdClass {
        return $this->create('units', $row + [
            'unit_code' => 'Unit ' . ($this->count + 1),
            'unit_name' => 'Programming',
            'level' => '5',
            'credits' => 15,
        ]);
    }

    /**
     * Create a BTEC grade.
     *
     * @param array $row Wire fields; userid is required.
     * @return stdClass The stored record.
     */
    public function create_grade(array $row): stdClass {
        return $this->create('grades', $row + [
            'student_zoho_id' => 'S' . $row['userid'],
            'grade' => 'Merit',
            'graded_date' => '2026-01-22',
        ]);
    }

    /**
     * Store one row through the repository, as the web service does.
     *
     * @param string $type The row type.
     * @param array $row Wire fields.
     * @return stdClass The stored record.
     */
    protected function create(string $type, array $row): stdClass {
        global $DB;

        $this->count++;
        $row += ['zoho_id' => (string) (5847596000000000 + $this->count)];
        $result = \local_student_dashboard\local\repository::upsert($type, [$row]);
        if ($result['warnings']) {
            throw new coding_exception('Invalid generated row: ' . $result['warnings'][0]['warningcode']);
        }
        return $DB->get_record(\local_student_dashboard\local\row_types::table($type), ['id' => $result['results'][0]['id']]);
    }
}
